"""Hostile layers: every one is refused or kept inside the snapshot root.

The ``canary`` fixture checks after each case that the directory beside the
snapshots is byte for byte (and xattr for xattr) unchanged.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from sandpull.errors import HostileEntryError
from tests.unpack.conftest import Stack
from tests.unpack.tarbuild import Spec, info
from tests.unpack.trees import expand, overlay_tree

# Layers are functions of the canary path so symlinks can aim at it.
Layers = Callable[[Path], Sequence[Sequence[Spec]]]


def _pax(name: str, type_: bytes = tarfile.REGTYPE, **headers: str) -> Spec:
    return (info(name, type_, pax_headers=headers), b"")


def _special(name: str, type_: bytes, major: int = 0, minor: int = 0) -> Spec:
    return (info(name, type_, devmajor=major, devminor=minor), b"")


REJECTED = [
    pytest.param(
        lambda c: [["innocent.txt => ../victim-file", "innocent.txt=PWNED"]],
        "climbs above the root",
        id="C12 a hardlink to a file above the root is rejected",
    ),
    pytest.param(
        lambda c: [["innocent.txt => Cargo.toml", "innocent.txt=PWNED"]],
        "not extracted",
        id="C12 a hardlink to a name only the working directory holds is rejected",
    ),
    pytest.param(
        lambda c: [["../../etc/ld.so.preload -> x"]],
        "climbs above the root",
        id="C15 a symlink whose own name climbs out is rejected",
    ),
    pytest.param(
        lambda c: [["a", "../escape/x => a"]],
        "climbs above the root",
        id="C15 a hardlink whose own name climbs out is rejected",
    ),
    pytest.param(
        lambda c: [["../escape/x/"]],
        "climbs above the root",
        id="C15 a directory whose own name climbs out is rejected",
    ),
    pytest.param(
        lambda c: [["a/../../escape=PWNED"]],
        "climbs above the root",
        id="a file name that climbs out after cleaning is rejected",
    ),
    pytest.param(
        lambda c: [[_special("../escape", tarfile.FIFOTYPE)]],
        "climbs above the root",
        id="a FIFO whose name climbs out is rejected",
    ),
    pytest.param(
        lambda c: [[_special("../../escape", tarfile.CHRTYPE, 1, 3)]],
        "climbs above the root",
        id="a device whose name climbs out is rejected",
    ),
    pytest.param(
        lambda c: [["usr/bin/perlbug", "usr/bin/x => /../victim-file"]],
        "climbs above the root",
        id="C11 an absolute hardlink target that climbs out is rejected",
    ),
    pytest.param(
        lambda c: [["usr/bin/perlbug", "usr/bin/x => ../../x"]],
        "climbs above the root",
        id="C11 a relative hardlink target that climbs out is rejected",
    ),
    pytest.param(
        lambda c: [["g => missing"]],
        "not extracted",
        id="a hardlink to a missing file is rejected",
    ),
    pytest.param(
        lambda c: [["f"], [".wh.f", "g => f"]],
        "not extracted",
        id="a hardlink to a file this layer whited out is rejected",
    ),
    pytest.param(
        lambda c: [["f"], [".wh.f"], ["g => f"]],
        "not extracted",
        id="a hardlink to a file a lower layer whited out is rejected",
    ),
    pytest.param(
        lambda c: [["d/", "g => d"]],
        "directory",
        id="a hardlink to a directory is rejected",
    ),
    pytest.param(
        lambda c: [["a/", "a/f", "a => a/f"]],
        "inside the entry itself",
        id="a hardlink replacing a directory that holds its target is rejected",
    ),
    pytest.param(
        lambda c: [["a -> b", "b -> a", "a/f"]],
        "symlinks",
        id="a symlink loop in a parent is rejected",
    ),
    pytest.param(
        lambda c: [["f=1", "f/g"]],
        "not a directory",
        id="a file used as a parent directory is rejected",
    ),
    pytest.param(
        lambda c: [[(info("."), b"")]],
        "root must be a directory",
        id="a root entry that is not a directory is rejected",
    ),
    pytest.param(
        lambda c: [[".wh.x/y"]],
        "parent directory",
        id="a whiteout marker used as a parent directory is rejected",
    ),
    pytest.param(
        lambda c: [["/".join(["d"] * 300) + "/f"]],
        "deeper than",
        id="a path deeper than the limit is rejected",
    ),
    pytest.param(
        lambda c: [[_pax("f", **{"SCHILY.xattr.user.big": "x" * 70_000})]],
        "at most 65536",
        id="a huge xattr is rejected",
    ),
    pytest.param(
        lambda c: [[_pax("f", path="a\0b")]],
        "NUL",
        id="a PAX path holding a NUL byte is rejected",
    ),
    pytest.param(
        lambda c: [[_pax("f", path="../../escape")]],
        "climbs above the root",
        id="a PAX path that climbs out is rejected",
    ),
    pytest.param(
        lambda c: [["a", _pax("f", tarfile.LNKTYPE, linkpath="../../victim-file")]],
        "climbs above the root",
        id="a PAX hardlink path that climbs out is rejected",
    ),
    pytest.param(
        lambda c: [[_pax("f", comment="x" * (2 << 20))]],
        "extension header",
        id="a PAX header larger than the bound is rejected",
    ),
    pytest.param(
        lambda c: [[(info("weird", b"Z"), b"")]],
        "unsupported entry type",
        id="an unknown entry type is rejected",
    ),
]


@pytest.mark.parametrize(("layers", "message"), REJECTED)
def test_hostile_layer_is_rejected(
    stack: Stack, canary: Path, in_canary_cwd: Path, layers: Layers, message: str
) -> None:
    *lower, last = layers(canary)
    stack.apply_all(lower)

    with pytest.raises(HostileEntryError, match=message) as raised:
        stack.apply(last)

    assert "sha256:" in str(raised.value)


CONTAINED = [
    pytest.param(
        lambda c: [[f"s -> {c}/victim-file", "h => s", "h=PWNED"]],
        lambda c: [f"s -> {c}/victim-file", "h=PWNED"],
        id="a hardlink to a symlink aimed outside is replaced, never written through",
    ),
    pytest.param(
        lambda c: [["d/", "d/f", f"d -> {c}", "d/victim-file=PWNED"]],
        lambda c: [f"d -> {c}", *_parents(c), f"{c}/victim-file=PWNED"[1:]],
        id="a directory swapped for a symlink to outside is followed inside the root",
    ),
    pytest.param(
        lambda c: [[f"etc -> {c}/etc"], ["etc/passwd=PWNED"], ["etc/.wh.passwd"]],
        lambda c: [f"etc -> {c}/etc", *_parents(c / "etc")],
        id="C13 a lower symlink to outside takes writes and whiteouts inside the root",
    ),
    pytest.param(
        lambda c: [["x -> ../../../../../../../..", "x/victim-file=PWNED"]],
        lambda c: ["x -> ../../../../../../../..", "victim-file=PWNED"],
        id="C14 a relative symlink climbing far is clamped at the root",
    ),
    pytest.param(
        lambda c: [[f"x -> {c}", "x/.wh..wh..opq", "x/.wh.victim-file"]],
        lambda c: [f"x -> {c}"],
        id="markers through a symlink to outside never touch the outside",
    ),
    pytest.param(
        lambda c: [[f"dev -> {c}", _special("dev/null", tarfile.CHRTYPE, 1, 3)]],
        lambda c: [f"dev -> {c}", *_parents(c), f"{c}/null c 1,3"[1:]],
        id="a device through a symlink to outside lands inside the root",
    ),
    pytest.param(
        lambda c: [
            ["a/b"],
            [
                _pax(
                    "a/",
                    tarfile.DIRTYPE,
                    **{"SCHILY.xattr.trusted.overlay.opaque": "y"},
                )
            ],
        ],
        lambda c: ["a/", "a/b"],
        id="an overlay xattr in the tar is skipped, so it cannot hide lower files",
    ),
    pytest.param(
        lambda c: [[_pax("f", path="/abs/file")]],
        lambda c: ["abs/", "abs/file="],
        id="an absolute PAX path is taken from the root",
    ),
]


def _parents(path: Path) -> list[str]:
    parts = path.parts[1:]
    return ["/".join(parts[: i + 1]) + "/" for i in range(len(parts))]


@pytest.mark.parametrize(("layers", "expected"), CONTAINED)
def test_hostile_layer_stays_inside_the_root(
    stack: Stack,
    canary: Path,
    tmp_path: Path,
    layers: Layers,
    expected: Callable[[Path], list[str]],
) -> None:
    stack.apply_all(layers(canary))

    assert overlay_tree(stack.snapshots, tmp_path / "merged") == expand(
        expected(canary)
    )
