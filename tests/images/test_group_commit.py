"""Group commits: applied snapshots are flushed and committed together (C42)."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

import pytest

from sandpull.errors import FailedPrecondition, SandpullError
from sandpull.images import ImageService
from sandpull.images import snapshots as snapshots_module
from sandpull.images.db import connect, transaction
from sandpull.images.snapshots import Snapshot, Snapshots
from sandpull.oci import Digest
from tests.images.fakes import FakeRegistryData
from tests.images.test_pipeline import AMD64, BASE, MIDDLE, REF, TOP, debris
from tests.support.images import build_image

PARENT = Digest("sha256", "a" * 64)
CHILD = Digest("sha256", "b" * 64)


@pytest.fixture
def syncfs_calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = snapshots_module._syncfs

    def counting(path: Path) -> None:
        calls.append(path)
        real(path)

    monkeypatch.setattr(snapshots_module, "_syncfs", counting)
    return calls


async def test_a_pull_flushes_its_applied_layers_once_when_it_ends(
    fake_service: ImageService,
    registry_data: FakeRegistryData,
    syncfs_calls: list[Path],
) -> None:
    registry_data.add("1", build_image([BASE, MIDDLE, TOP]))
    fake_service._pipeline.committer._delay = 3600.0

    await fake_service.pull(REF, AMD64)

    assert len(syncfs_calls) == 1
    assert len(fake_service.snapshots.committed()) == 3
    assert fake_service.check().clean


async def test_a_failed_flush_commits_nothing_and_leaves_no_directory(
    fake_service: ImageService,
    registry_data: FakeRegistryData,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry_data.add("1", build_image([BASE, TOP]))
    fake_service._pipeline.committer._delay = 3600.0

    def failing(path: Path) -> None:
        raise OSError(errno.EIO, "input/output error", str(path))

    monkeypatch.setattr(snapshots_module, "_syncfs", failing)

    with pytest.raises(SandpullError, match="input/output error"):
        await fake_service.pull(REF, AMD64)

    assert fake_service.snapshots.committed() == []
    assert list((fake_service.root / "snapshots").iterdir()) == []
    assert debris(fake_service.root) == []


def test_a_snapshot_whose_parent_is_not_committed_is_dropped(tmp_path: Path) -> None:
    snapshots = Snapshots(tmp_path, connect(tmp_path / "meta.db"))
    snapshots.applied(snapshots.prepare(PARENT, None))
    child = snapshots.applied(snapshots.prepare(CHILD, PARENT))

    [result] = snapshots.commit_all([child])

    assert isinstance(result, FailedPrecondition)
    assert "parent" in str(result) and "not committed" in str(result)
    assert not child.fs.exists()
    assert snapshots.get(CHILD) is None


def test_parent_and_child_commit_in_one_group(tmp_path: Path) -> None:
    snapshots = Snapshots(tmp_path, connect(tmp_path / "meta.db"))
    parent = snapshots.applied(snapshots.prepare(PARENT, None))
    (parent.fs / "file").write_text("x")
    child = snapshots.applied(snapshots.prepare(CHILD, PARENT))

    results = snapshots.commit_all([parent, child])

    assert all(isinstance(r, Snapshot) for r in results)
    assert [s.chain_id for s in snapshots.stack(CHILD)] == [CHILD, PARENT]
    assert snapshots.lower_dirs(CHILD) == [child.fs, parent.fs]


def test_clean_up_leaves_what_this_process_is_still_writing(tmp_path: Path) -> None:
    snapshots = Snapshots(tmp_path, connect(tmp_path / "meta.db"))
    applied = snapshots.applied(snapshots.prepare(PARENT, None))
    writing = snapshots.prepare(CHILD, PARENT)
    (tmp_path / "snapshots" / "99").mkdir()

    removed = snapshots.clean()

    assert removed == ["99"]
    assert applied.fs.is_dir() and writing.fs.is_dir()
    assert snapshots.lower_dirs(PARENT) == [applied.fs]


def test_a_transaction_that_need_not_be_durable_restores_full_sync(
    tmp_path: Path,
) -> None:
    db = connect(tmp_path / "meta.db")
    with transaction(db, durable=False) as tx:
        during = tx.execute("PRAGMA synchronous").fetchone()[0]

    assert (during, db.execute("PRAGMA synchronous").fetchone()[0]) == (1, 2)


def test_one_store_pulls_under_two_event_loops_in_turn(
    fake_service: ImageService, registry_data: FakeRegistryData
) -> None:
    registry_data.add("1", build_image([BASE]))
    registry_data.add("2", build_image([BASE, TOP]))

    asyncio.run(fake_service.pull(REF, AMD64))
    asyncio.run(fake_service.pull("registry.test/app:2", AMD64))

    assert len(fake_service.snapshots.committed()) == 2
