"""A loop of ``sandpull pull`` of the large Debian image, each killed with SIGKILL.

Each iteration starts from an empty store (``rmi`` and ``gc`` of the last one),
kills the pull after a random delay drawn across a whole pull's duration, reads
from the store which phase it hit (download, apply, commit), then restarts and
completes the pull. After every restart:

- the image's snapshots have the same tree digests as a clean pull's, and
  ``check`` (which recomputes them from disk) is clean; the clean pull's merged
  tree equals umoci's rootfs, so every iteration's does too;
- no ``*.partial`` snapshot and no ingest is left;
- the restart fetched at most what was not already on disk: over the whole loop,
  blobs completed before a kill were not fetched again.

Delays are random (seeded, the seed is in the failure message); iterations the
random delays do not bring to a phase are aimed at it by watching the store, so
every phase is hit. Default: 30 iterations; ``--long``: 100.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.images.bigimage import OVERHEAD_LIMIT
from tests.support.catalogue import Catalogue
from tests.support.images import Image, Pushed
from tests.support.registry_server import RegistryServer
from tests.support.trees import compare_trees, tree_snapshot
from tests.support.umoci import UmociRootfs

pytestmark = [pytest.mark.registry, pytest.mark.root]

PHASES = ("download", "apply", "commit")


def _state(root: Path) -> tuple[bool, bool, bool]:
    """Whether the store holds an ingest, a snapshot being applied, and anything
    committed (a snapshot row or directory, or an image record)."""
    snapshots = root / "snapshots"
    ingesting = any(p.stat().st_size > 0 for p in root.glob("ingest/*/data"))
    applying = any(snapshots.glob("*.partial"))
    committed = any(p.name.isdigit() for p in snapshots.glob("*"))
    if (root / "meta.db").exists():
        with sqlite3.connect(f"file:{root / 'meta.db'}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT (SELECT count(*) FROM images) + (SELECT count(*) FROM "
                "snapshots WHERE status = 'committed')"
            ).fetchone()[0]
        committed = committed or rows > 0
    return ingesting, applying, committed


def phase_of(root: Path) -> str:
    """Which phase a kill hit, from what the store holds afterwards."""
    _, applying, committed = _state(root)
    if committed:
        return "commit"
    if applying:
        return "apply"
    return "download"


def _watch_for(phase: str) -> Callable[[Path], bool]:
    def reached(root: Path) -> bool:
        ingesting, applying, committed = _state(root)
        return {"download": ingesting, "apply": applying, "commit": committed}[phase]

    return reached


def _kill_after(cli: Cli, ref: str, delay: float | None, watch: object) -> bool:
    """Start a pull, SIGKILL it after ``delay`` or when ``watch`` says; True if
    it was killed before it finished."""
    process = subprocess.Popen(
        cli.command(*cli.pull_args(ref)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started = time.monotonic()
    try:
        while process.poll() is None:
            due = delay is not None and time.monotonic() - started >= delay
            if due or (callable(watch) and cli.root.exists() and watch(cli.root)):
                process.send_signal(signal.SIGKILL)
                process.wait()
                return True
            time.sleep(0.005)
        return False
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _left_on_disk(root: Path, image: Image) -> int:
    """Layer blob bytes a restart need not fetch: committed snapshots, ingests."""
    with sqlite3.connect(root / "meta.db") as db:
        committed = {
            row[0]
            for row in db.execute(
                "SELECT chain_id FROM snapshots WHERE status = 'committed'"
            )
        }
    from sandpull.oci import chain_ids

    left = 0
    for layer, chain in zip(image.layers, chain_ids(list(image.diff_ids)), strict=True):
        data = root / "ingest" / f"sha256-{layer.digest.hex}" / "data"
        if str(chain) in committed:
            left += layer.size
        elif data.exists():
            left += data.stat().st_size
    return left


def _tree_digests(root: Path) -> list[str]:
    with sqlite3.connect(root / "meta.db") as db:
        rows = db.execute(
            "SELECT tree_digest FROM snapshots WHERE status = 'committed' ORDER BY id"
        )
        return [row[0] for row in rows]


def _merged_tree(cli: Cli, ref: str) -> dict[str, object]:
    target = cli.work / "mnt"
    target.mkdir(exist_ok=True)
    cli.ok("mount", ref, str(target))
    try:
        return tree_snapshot(target)  # type: ignore[return-value]
    finally:
        subprocess.run(["umount", str(target)], check=True)


def _timed_pull(cli: Cli, ref: str) -> tuple[dict[str, object], float]:
    started = time.monotonic()
    pulled = cli.pull(ref)
    return pulled, time.monotonic() - started


def _iterations(request: pytest.FixtureRequest) -> int:
    default = 100 if request.config.getoption("--long") else 30
    return int(os.environ.get("SANDPULL_CRASH_ITERATIONS", default))


@pytest.fixture(scope="module")
def large(registry_plain: RegistryServer) -> tuple[Image, Pushed]:
    catalogue = Catalogue()
    image = catalogue.image("debian")
    assert isinstance(image, Image)
    return image, catalogue.push(registry_plain, "debian", "crash/large")


def test_killed_pulls_restart_to_the_right_image_without_refetching(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    registry_plain: RegistryServer,
    large: tuple[Image, Pushed],
    umoci_rootfs: UmociRootfs,
) -> None:
    image, where = large
    total = sum(x.size for x in image.layers)
    cli = Cli(tmp_path / "store", registry_plain, tmp_path)
    full_pull = _timed_pull(cli, where.ref)[1]
    reference = umoci_rootfs(registry_plain, "crash/large:v1")
    assert compare_trees(tree_snapshot(reference), _merged_tree(cli, where.ref)) == []
    want_trees = _tree_digests(cli.root)

    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    iterations = _iterations(request)
    hit: Counter[str] = Counter()
    refetched = skipped = 0
    for i in range(iterations):
        cli.ok("rmi", where.ref)
        cli.ok("gc")
        missing = [p for p in PHASES if not hit[p]]
        aimed = missing[0] if iterations - i <= len(missing) else None
        delay = None if aimed else rng.uniform(0.05, 0.8 * full_pull)
        watch = _watch_for(aimed) if aimed else None
        killed = _kill_after(cli, where.ref, delay, watch)
        phase = phase_of(cli.root) if killed else "finished"
        hit[phase] += 1
        left = _left_on_disk(cli.root, image)

        pulled, seconds = _timed_pull(cli, where.ref)

        context = f"seed {seed}, iteration {i}, phase {phase}, delay {delay}"
        assert pulled["image_id"] == str(image.config_digest), context
        assert pulled["bytes_fetched"] <= total - left + OVERHEAD_LIMIT, context
        assert _tree_digests(cli.root) == want_trees, context
        assert list((cli.root / "snapshots").glob("*.partial")) == [], context
        assert list((cli.root / "ingest").iterdir()) == [], context
        assert "problem" not in cli.ok("check"), context
        refetched += pulled["bytes_fetched"]
        skipped += left
        if phase == "download" or (phase == "finished" and not left):
            full_pull = min(full_pull, seconds)

    print(f"crash loop: {iterations} iterations, phases {dict(hit)}, seed {seed}")
    assert all(hit[p] for p in PHASES), f"phases hit: {dict(hit)}"
    assert refetched <= iterations * (total + OVERHEAD_LIMIT) - skipped
    assert compare_trees(tree_snapshot(reference), _merged_tree(cli, where.ref)) == []
    assert json.loads(cli.ok("images", "--json"))[0]["name"] == where.ref
