"""A store on a small tmpfs: running out of space is a clear error, not debris."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.images.bigimage import big_image
from tests.support.images import push_image
from tests.support.registry_server import RegistryServer

pytestmark = [pytest.mark.registry, pytest.mark.root]

STORE_SIZE = "8m"


@pytest.fixture
def small_store(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "store"
    root.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={STORE_SIZE}", "tmpfs", str(root)],
        check=True,
    )
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=True)


def test_no_space_fails_cleanly_and_a_smaller_pull_then_works(
    tmp_path: Path, small_store: Path, registry_plain: RegistryServer
) -> None:
    too_big = push_image(
        registry_plain, "space/big", "v1", big_image(2, 6 << 20, seed=3)
    )
    fits = push_image(
        registry_plain, "space/small", "v1", big_image(1, 1 << 20, seed=4)
    )
    cli = Cli(small_store, registry_plain, tmp_path)

    failed = cli.run(*cli.pull_args(too_big.ref))

    assert failed.returncode == 8, failed.stderr
    assert failed.stderr.startswith("error: ") and "no space" in failed.stderr
    assert json.loads(cli.ok("images", "--json")) == []
    assert list((small_store / "snapshots").glob("*.partial")) == []
    assert list((small_store / "ingest").iterdir()) == []

    cli.pull(fits.ref)

    assert [i["name"] for i in json.loads(cli.ok("images", "--json"))] == [fits.ref]
    assert "problem" not in cli.ok("check")


def test_rmi_and_gc_give_the_space_back(
    tmp_path: Path, small_store: Path, registry_plain: RegistryServer
) -> None:
    first = push_image(registry_plain, "space/one", "v1", big_image(1, 3 << 20, seed=5))
    second = push_image(
        registry_plain, "space/two", "v1", big_image(1, 3 << 20, seed=6)
    )
    cli = Cli(small_store, registry_plain, tmp_path)
    cli.pull(first.ref)
    assert cli.run(*cli.pull_args(second.ref)).returncode == 8

    cli.ok("rmi", first.ref)
    cli.ok("gc")
    cli.pull(second.ref)

    assert [i["name"] for i in json.loads(cli.ok("images", "--json"))] == [second.ref]
