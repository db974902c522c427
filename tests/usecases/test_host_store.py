"""The host store used the way a containerd or podman user would."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.support.catalogue import Catalogue

pytestmark = [pytest.mark.registry]


def test_a_pull_repairs_a_damaged_config_blob(
    cli: Cli, image_catalogue: Catalogue
) -> None:
    pushed = image_catalogue.push(cli.server, "small", repo="usecases/damaged")
    pulled = cli.pull(pushed.ref)
    config = cli.root / "blobs" / "sha256" / pulled["image_id"].split(":")[1]
    config.write_bytes(config.read_bytes() + b" ")
    assert cli.run("check").returncode == 1

    again = cli.pull(pushed.ref)

    assert again["image_id"] == pulled["image_id"]
    assert json.loads(cli.ok("check", "--json"))["problems"] == []


def test_gc_keeps_the_snapshots_of_a_mounted_image_until_it_is_unmounted(
    cli: Cli, image_catalogue: Catalogue, tmp_path: Path
) -> None:
    pushed = image_catalogue.push(cli.server, "zstd", repo="usecases/mounted")
    cli.pull(pushed.ref)
    target = tmp_path / "mnt"
    target.mkdir()
    cli.ok("mount", pushed.ref, str(target))
    try:
        cli.ok("rmi", pushed.ref)
        kept = json.loads(cli.ok("gc", "--json"))
        hostname = (target / "etc" / "hostname").read_text()
    finally:
        subprocess.run(["umount", str(target)], check=True)
    freed = json.loads(cli.ok("gc", "--json"))

    assert kept["snapshots_removed"] == 0
    assert hostname == "sandpull-zstd\n"
    assert freed["snapshots_removed"] == 2


def test_images_prints_whole_names_when_piped(
    cli: Cli, image_catalogue: Catalogue
) -> None:
    repo = "usecases/" + "a-repository-name-longer-than-a-terminal-line" * 2
    pushed = image_catalogue.push(cli.server, "small", repo=repo)
    cli.pull(pushed.ref)

    listed = cli.ok("images")

    assert pushed.ref in listed.split()


def test_a_pull_by_digest_logs_the_digest_once(
    cli: Cli, image_catalogue: Catalogue
) -> None:
    pushed = image_catalogue.push(cli.server, "small", repo="usecases/by-digest")

    result = cli.run(*cli.pull_args(pushed.ref_by_digest))

    assert f"pulled {pushed.ref_by_digest} in " in result.stderr
