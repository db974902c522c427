"""Resources an applied layer leaves behind: none but the snapshot."""

from __future__ import annotations

import os

import pytest

from sandpull.errors import HostileEntryError
from tests.unpack.conftest import Stack
from tests.unpack.trees import python_tree


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_many_directories_apply_with_a_bounded_fd_cache(stack: Stack) -> None:
    layer = [f"d{i}/sub/f" for i in range(400)]
    before = _open_fds()

    stack.apply(layer)

    assert _open_fds() == before
    assert len(python_tree(stack.snapshots)) == 400 * 3


def test_failed_layer_leaves_no_open_fd(stack: Stack) -> None:
    before = _open_fds()

    with pytest.raises(HostileEntryError):
        stack.apply(["a/b", "../escape"])

    assert _open_fds() == before


def test_copy_up_reads_the_nearest_lower_first(stack: Stack) -> None:
    stack.apply(["etc/hosts=one"])
    stack.apply(["etc/hosts=two"])
    stack.apply(["etc/alias => etc/hosts"])

    assert (stack.snapshots[2] / "etc/alias").read_text() == "two"
