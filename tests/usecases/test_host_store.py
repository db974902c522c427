"""The host store used the way a containerd or podman user would."""

from __future__ import annotations

import json
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
