"""The tree comparison itself: it must see every kind of difference it claims to."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.trees import compare_trees, tree_snapshot

MTIME = 1_700_000_000


def _make_tree(root: Path) -> None:
    (root / "dir").mkdir()
    (root / "dir" / "file").write_text("content")
    (root / "dir" / "other").write_text("other")
    os.link(root / "dir" / "file", root / "hard")
    os.symlink("dir/file", root / "link")
    os.mkfifo(root / "fifo")
    os.mknod(root / "null", 0o20666, os.makedev(1, 3))
    os.setxattr(root / "dir" / "file", "user.kept", b"v1")
    for path in root.rglob("*"):
        os.utime(path, (MTIME, MTIME), follow_symlinks=False)


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    os.utime(path, (MTIME, MTIME))


MUTATIONS: list[tuple[str, Callable[[Path], None], str]] = [
    ("a changed byte", lambda r: _write(r / "dir/other", "otheR"), "dir/other: sha256"),
    ("a changed mode", lambda r: (r / "dir/other").chmod(0o600), "dir/other: mode"),
    ("a setuid bit", lambda r: (r / "dir/other").chmod(0o4644), "dir/other: mode"),
    ("a changed owner", lambda r: os.chown(r / "dir/other", 1, 0), "dir/other: uid"),
    ("a changed group", lambda r: os.chown(r / "dir/other", 0, 7), "dir/other: gid"),
    ("a deleted file", lambda r: (r / "dir/other").unlink(), "dir/other: only in"),
    ("an extra file", lambda r: (r / "new").write_text(""), "new: only in"),
    (
        "a retargeted symlink",
        lambda r: ((r / "link").unlink(), os.symlink("dir/other", r / "link")),
        "link: target",
    ),
    (
        "a broken hardlink",
        lambda r: ((r / "hard").unlink(), _write(r / "hard", "content")),
        "hard: link_group",
    ),
    (
        "a changed xattr",
        lambda r: os.setxattr(r / "dir/file", "user.kept", b"v2"),
        "dir/file: xattrs",
    ),
    (
        "an added xattr",
        lambda r: os.setxattr(r / "dir/other", "user.new", b"x"),
        "dir/other: xattrs",
    ),
    (
        "a changed device number",
        lambda r: (
            (r / "null").unlink(),
            os.mknod(r / "null", 0o20666, os.makedev(1, 5)),
        ),
        "null: rdev",
    ),
    (
        "a fifo turned into a file",
        lambda r: ((r / "fifo").unlink(), (r / "fifo").write_text("")),
        "fifo: type",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [pytest.param(m, e, id=f"comparison reports {name}") for name, m, e in MUTATIONS],
)
def test_compare_trees_reports(
    tmp_path: Path, mutate: Callable[[Path], None], expected: str
) -> None:
    _make_tree(tmp_path)
    before = tree_snapshot(tmp_path)
    mutate(tmp_path)

    problems = compare_trees(before, tree_snapshot(tmp_path))

    assert any(p.startswith(expected) for p in problems), problems


def test_compare_trees_finds_nothing_between_a_tree_and_itself(tmp_path: Path) -> None:
    _make_tree(tmp_path)
    assert compare_trees(tree_snapshot(tmp_path), tree_snapshot(tmp_path)) == []


def test_compare_trees_reports_file_mtimes_only_when_asked(tmp_path: Path) -> None:
    _make_tree(tmp_path)
    before = tree_snapshot(tmp_path)
    os.utime(tmp_path / "dir/other", (1, 1))
    after = tree_snapshot(tmp_path)

    assert compare_trees(before, after) == []
    assert compare_trees(before, after, mtimes=True) == [
        "dir/other: mtime expected 1700000000, actual 1"
    ]


def test_directory_mtimes_are_never_compared(tmp_path: Path) -> None:
    _make_tree(tmp_path)
    before = tree_snapshot(tmp_path)
    os.utime(tmp_path / "dir", (1, 1))
    assert compare_trees(before, tree_snapshot(tmp_path), mtimes=True) == []


def test_snapshot_ignores_overlay_bookkeeping_xattrs(tmp_path: Path) -> None:
    _make_tree(tmp_path)
    before = tree_snapshot(tmp_path)
    os.setxattr(tmp_path / "dir", "trusted.overlay.opaque", b"y")
    assert compare_trees(before, tree_snapshot(tmp_path)) == []
