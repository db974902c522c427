"""The image commands against the real registry in its three setups."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.images.bigimage import OVERHEAD_LIMIT, big_image
from tests.support.catalogue import Catalogue
from tests.support.images import build_image, push_image
from tests.support.registry_server import RegistryServer

pytestmark = [pytest.mark.registry]


@pytest.mark.parametrize(
    "registry",
    [
        pytest.param("registry_plain", id="pull over plain http without auth"),
        pytest.param("registry_tls_basic", id="pull over tls with basic auth"),
        pytest.param("registry_token", id="pull over http with bearer tokens"),
    ],
)
def test_pull_from_each_registry_setup(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    image_catalogue: Catalogue,
    registry: str,
) -> None:
    server: RegistryServer = request.getfixturevalue(registry)
    pushed = image_catalogue.push(server, "docker-v2s2", repo="cli/setup")
    image = image_catalogue.platform_image("docker-v2s2")
    cli = Cli(tmp_path / "store", server, tmp_path)

    pulled = cli.pull(pushed.ref)

    assert pulled["image_id"] == str(image.config_digest)
    assert pulled["manifest_digest"] == str(image.digest)
    assert pulled["bytes_fetched"] >= sum(x.size for x in image.layers)
    listed = json.loads(cli.ok("images", "--json"))
    assert [i["name"] for i in listed] == [pushed.ref]
    inspected = json.loads(cli.ok("inspect", pushed.ref))
    assert inspected["diff_ids"] == [str(d) for d in image.diff_ids]
    assert all((Path(p) / "etc").is_dir() for p in inspected["snapshots"][-1:])
    assert "checked 2 blobs and 2 snapshots" in cli.ok("check")


def test_pull_logs_one_line_with_bytes_and_time(
    cli: Cli, image_catalogue: Catalogue
) -> None:
    pushed = image_catalogue.push(cli.server, "small", repo="cli/log")

    result = cli.run(*cli.pull_args(pushed.ref))

    lines = [x for x in result.stderr.splitlines() if x.startswith("pulled ")]
    assert len(lines) == 1
    assert lines[0].startswith(f"pulled {pushed.ref}@{pushed.digest} in ")
    assert lines[0].endswith(" MB fetched")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        pytest.param(
            ["pull", "UPPER/Case"],
            3,
            "error: parse reference",
            id="a bad reference exits 3 with one error line",
        ),
        pytest.param(
            ["inspect", "registry.test/absent:1"],
            5,
            "error: find image",
            id="inspecting an absent image exits 5 with one error line",
        ),
        pytest.param(
            ["rmi", "registry.test/absent:1"],
            5,
            "error: find image",
            id="removing an absent image exits 5 with one error line",
        ),
        pytest.param(
            ["pull", "x/y", "--platform", "linux"],
            3,
            "error: parse platform",
            id="a bad platform exits 3 with one error line",
        ),
    ],
)
def test_errors_are_one_line_and_a_code(
    cli: Cli, args: list[str], code: int, message: str
) -> None:
    result = cli.run(*args)

    assert result.returncode == code
    assert result.stderr.startswith(message)
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_tag_is_not_found(cli: Cli) -> None:
    result = cli.run(*cli.pull_args(f"{cli.server.host}/cli/nothing:here"))

    assert result.returncode == 5, result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_password_is_unauthenticated(
    tmp_path: Path, registry_tls_basic: RegistryServer, image_catalogue: Catalogue
) -> None:
    pushed = image_catalogue.push(registry_tls_basic, "small", repo="cli/auth")
    cli = Cli(tmp_path / "store", registry_tls_basic, tmp_path)

    result = cli.run(*cli.pull_args(pushed.ref), stdin="wrong-password")

    assert result.returncode == 16, result.stderr
    assert "wrong-password" not in result.stderr


def test_rmi_and_gc_free_the_space(cli: Cli, image_catalogue: Catalogue) -> None:
    pushed = image_catalogue.push(cli.server, "whiteouts", repo="cli/gc")
    cli.pull(pushed.ref)

    cli.ok("rmi", pushed.ref)
    report = json.loads(cli.ok("gc", "--json"))

    assert report["snapshots_removed"] > 0 and report["bytes_freed"] > 0
    assert json.loads(cli.ok("images", "--json")) == []
    assert list((cli.root / "snapshots").iterdir()) == []
    assert list((cli.root / "blobs" / "sha256").iterdir()) == []


def test_C22_repeated_layer_is_applied_at_each_position(
    cli: Cli, image_catalogue: Catalogue
) -> None:
    pushed = image_catalogue.push(cli.server, "repeated-layer", repo="cli/repeated")
    image = image_catalogue.platform_image("repeated-layer")

    cli.pull(pushed.ref)

    snapshots = json.loads(cli.ok("inspect", pushed.ref))["snapshots"]
    assert len(snapshots) == len(image.layers) == 3
    assert (Path(snapshots[0]) / "data" / "a").read_text() == "from A"


def test_C22_repeated_layer_is_fetched_once(cli: Cli) -> None:
    a, b = big_image(2, 1 << 20, seed=11).layers
    image = build_image([a, b, a])
    pushed = push_image(cli.server, "cli/repeated-big", "v1", image)

    pulled = cli.pull(pushed.ref)

    distinct = a.size + b.size
    assert distinct <= pulled["bytes_fetched"] < distinct + OVERHEAD_LIMIT
