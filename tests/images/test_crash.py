"""``sandpull pull`` killed with SIGKILL at several points, then run again (C42).

The kill point is found by watching the store, not by timing: while a layer
is downloading (ingest data growing), while one is being applied (a
``*.partial`` snapshot exists), and once a snapshot has been committed. The
re-run must give the right image, leave no debris, pass ``check``, and fetch
only what was not already on disk.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.images.bigimage import OVERHEAD_LIMIT, big_image
from tests.support.images import Image, Pushed, push_image
from tests.support.registry_server import RegistryServer

pytestmark = [pytest.mark.registry]

LAYERS = 4
LAYER_BYTES = 8 << 20


def _downloading(root: Path) -> bool:
    return any(p.stat().st_size > 0 for p in (root / "ingest").glob("*/data"))


def _applying(root: Path) -> bool:
    return any((root / "snapshots").glob("*.partial/fs/*"))


def _committed(root: Path) -> bool:
    return any(p.name.isdigit() for p in (root / "snapshots").glob("*"))


KILL_POINTS: list[object] = [
    pytest.param(_downloading, id="C42 killed while a layer downloads"),
    pytest.param(_applying, id="C42 killed while a layer is applied"),
    pytest.param(_committed, id="C42 killed after a snapshot is committed"),
]


@pytest.fixture(scope="module")
def pushed(registry_plain: RegistryServer) -> tuple[Image, Pushed]:
    image = big_image(LAYERS, LAYER_BYTES, seed=7)
    return image, push_image(registry_plain, "crash/big", "v1", image)


@pytest.mark.parametrize("point", KILL_POINTS)
def test_rerun_after_kill_completes_and_resumes(
    tmp_path: Path,
    registry_plain: RegistryServer,
    pushed: tuple[Image, Pushed],
    point: Callable[[Path], bool],
) -> None:
    image, where = pushed
    cli = Cli(tmp_path / "store", registry_plain, tmp_path)

    assert _kill_when(cli, where.ref, point), "the pull ended before the kill point"
    left = _left_on_disk(cli.root, image)
    pulled = cli.pull(where.ref)

    assert pulled["image_id"] == str(image.config_digest)
    want = sum(x.size for x in image.layers) - left
    assert want <= pulled["bytes_fetched"] < want + OVERHEAD_LIMIT
    assert list((cli.root / "snapshots").glob("*.partial")) == []
    assert list((cli.root / "ingest").iterdir()) == []
    assert "problem" not in cli.ok("check")
    snapshots = json.loads(cli.ok("inspect", where.ref))["snapshots"]
    for i, directory in enumerate(reversed(snapshots)):
        assert (Path(directory) / "data" / str(i)).stat().st_size == LAYER_BYTES


def _kill_when(cli: Cli, ref: str, point: Callable[[Path], bool]) -> bool:
    process = subprocess.Popen(
        cli.command(*cli.pull_args(ref)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while process.poll() is None:
            if cli.root.exists() and point(cli.root):
                process.send_signal(signal.SIGKILL)
                process.wait()
                return True
        return False
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _left_on_disk(root: Path, image: Image) -> int:
    """Bytes of layer blobs a re-run need not fetch: committed or in the ingest."""
    with sqlite3.connect(root / "meta.db") as db:
        committed = {
            row[0]
            for row in db.execute(
                "SELECT chain_id FROM snapshots WHERE status = 'committed'"
            )
        }
    chain = [str(c) for c in _chain_ids(image)]
    left = 0
    for layer, chain_id in zip(image.layers, chain, strict=True):
        data = root / "ingest" / f"sha256-{layer.digest.hex}" / "data"
        if chain_id in committed:
            left += layer.size
        elif data.exists():
            left += data.stat().st_size
    return left


def _chain_ids(image: Image) -> list[object]:
    from sandpull.oci import chain_ids

    return list(chain_ids(list(image.diff_ids)))
