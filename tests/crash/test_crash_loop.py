"""A loop of ``sandpull pull`` of the large Debian image, each killed with SIGKILL.

Each iteration starts from an empty store,
kills the pull after a random delay drawn across a whole pull's duration, reads
from the store which phase it hit (download, apply, commit), then restarts and
completes the pull. After every restart:

- the image's snapshots have the same tree digests as a clean pull's (computed
  from disk at commit), and every fifth time ``check`` recomputes them and finds
  nothing wrong; the clean pull's merged tree equals umoci's rootfs, so every
  iteration's does too, and the last one's is compared again;
- no ``*.partial`` snapshot and no ingest is left;
- the restart fetched at most what was not already on disk: over the whole loop,
  blobs completed before a kill were not fetched again.

Delays are random (seeded, the seed is in the failure message); iterations the
random delays do not bring to a phase are aimed at it by watching the store, so
every phase is hit. Default: 12 iterations (about three minutes on two busy
cores); ``--long`` adds a run of 100. ``SANDPULL_CRASH_ITERATIONS`` overrides both.
"""

from __future__ import annotations

import json
import os
import random
import shutil
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


def _state(root: Path, image: Image) -> tuple[bool, bool, bool]:
    """Whether a layer is still downloading (its ingest holds part of it), a
    snapshot is being applied, and anything is committed (a snapshot row or
    directory, or an image record)."""
    snapshots = root / "snapshots"
    sizes = {f"sha256-{x.digest.hex}": x.size for x in image.layers}
    partial_ingest = any(
        0 < p.stat().st_size < sizes.get(p.parent.name, 0)
        for p in root.glob("ingest/*/data")
    )
    applying = any(snapshots.glob("*.partial"))
    committed = any(p.name.isdigit() for p in snapshots.glob("*"))
    if (root / "meta.db").exists():
        with sqlite3.connect(f"file:{root / 'meta.db'}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT (SELECT count(*) FROM images) + (SELECT count(*) FROM "
                "snapshots WHERE status = 'committed')"
            ).fetchone()[0]
        committed = committed or rows > 0
    return partial_ingest, applying, committed


def phase_of(root: Path, image: Image) -> str:
    """Which phase a kill hit, from what the store holds afterwards.

    Layers are applied while they download, so "download" means a blob was
    still arriving, "apply" that every blob had arrived and a snapshot was
    being written, "commit" that snapshots or the image were being committed.
    """
    downloading, applying, committed = _state(root, image)
    if committed:
        return "commit"
    if downloading:
        return "download"
    return "apply" if applying else "resolve"


def _watch_for(phase: str, image: Image) -> Callable[[Path], bool]:
    def reached(root: Path) -> bool:
        downloading, applying, committed = _state(root, image)
        if phase == "apply":
            return applying and not downloading
        return {"download": downloading, "commit": committed}[phase]

    return reached


def _kill_after(cli: Cli, ref: str, delay: float | None, watch: object) -> float | None:
    """Start a pull, SIGKILL it after ``delay`` or when ``watch`` says; None if
    it was killed, else how long the pull took to finish on its own."""
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
                return None
            time.sleep(0.005)
        return time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _left_on_disk(root: Path, image: Image) -> int:
    """Layer blob bytes a restart need not fetch: committed snapshots, ingests."""
    if not (root / "meta.db").exists():
        return 0
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


LOOPS: list[object] = [
    pytest.param(12, id="twelve killed pulls"),
    pytest.param(100, id="a hundred killed pulls", marks=pytest.mark.slow),
]


@pytest.fixture(scope="module")
def large(registry_plain: RegistryServer) -> tuple[Image, Pushed]:
    catalogue = Catalogue()
    image = catalogue.image("debian")
    assert isinstance(image, Image)
    return image, catalogue.push(registry_plain, "debian", "crash/large")


@pytest.mark.parametrize("iterations", LOOPS)
def test_killed_pulls_restart_to_the_right_image_without_refetching(
    iterations: int,
    tmp_path: Path,
    registry_plain: RegistryServer,
    large: tuple[Image, Pushed],
    umoci_rootfs: UmociRootfs,
) -> None:
    image, where = large
    total = sum(x.size for x in image.layers)
    # The clean pull is mounted in a store of its own: a mounted image's
    # snapshots are kept through gc, and the loop's store must start empty.
    clean = Cli(tmp_path / "clean", registry_plain, tmp_path / "clean-work")
    clean.work.mkdir()
    clean.pull(where.ref)
    reference = umoci_rootfs(registry_plain, "crash/large:v1")
    assert compare_trees(tree_snapshot(reference), _merged_tree(clean, where.ref)) == []
    want_trees = _tree_digests(clean.root)
    cli = Cli(tmp_path / "store", registry_plain, tmp_path)
    full_pull = _timed_pull(cli, where.ref)[1]
    assert _tree_digests(cli.root) == want_trees

    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    iterations = int(os.environ.get("SANDPULL_CRASH_ITERATIONS", iterations))
    hit: Counter[str] = Counter()
    refetched = skipped = 0
    for i in range(iterations):
        # A fresh store each time: a killed pull's lease rightly keeps what it
        # fetched through gc until the lease expires.
        shutil.rmtree(cli.root)
        cli = Cli(tmp_path / f"store{i}", registry_plain, tmp_path)
        missing = [p for p in PHASES if not hit[p]]
        aimed = missing[0] if iterations - i <= len(missing) else None
        delay = None if aimed else rng.uniform(0.15 * full_pull, 0.9 * full_pull)
        watch = _watch_for(aimed, image) if aimed else None
        finished = _kill_after(cli, where.ref, delay, watch)
        phase = phase_of(cli.root, image) if finished is None else "finished"
        hit[phase] += 1
        left = _left_on_disk(cli.root, image)

        pulled = cli.pull(where.ref)

        context = f"seed {seed}, iteration {i}, phase {phase}, delay {delay}"
        assert pulled["image_id"] == str(image.config_digest), context
        assert pulled["bytes_fetched"] <= total - left + OVERHEAD_LIMIT, context
        assert _tree_digests(cli.root) == want_trees, context
        assert list((cli.root / "snapshots").glob("*.partial")) == [], context
        assert list((cli.root / "ingest").iterdir()) == [], context
        if i % 5 == 4:  # check re-hashes every snapshot; the digests above suffice
            assert "problem" not in cli.ok("check"), context
        refetched += pulled["bytes_fetched"]
        skipped += left
        if finished is not None:
            full_pull = min(full_pull, finished)

    print(f"crash loop: {iterations} iterations, phases {dict(hit)}, seed {seed}")
    assert all(hit[p] for p in PHASES), f"phases hit: {dict(hit)}"
    assert refetched <= iterations * (total + OVERHEAD_LIMIT) - skipped
    assert compare_trees(tree_snapshot(reference), _merged_tree(cli, where.ref)) == []
    assert json.loads(cli.ok("images", "--json"))[0]["name"] == where.ref
