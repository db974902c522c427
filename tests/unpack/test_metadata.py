"""Metadata applied faithfully as root: owners, modes, times, xattrs, devices."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandpull.unpack import ApplyOptions
from tests.unpack.conftest import Stack
from tests.unpack.tarbuild import info
from tests.unpack.trees import expand, overlay_tree

CAP_NET_BIND = bytes.fromhex("0100000200040000000000000000000000000000")


def _file(
    name: str, data: bytes = b"x", **fields: object
) -> tuple[tarfile.TarInfo, bytes]:
    return info(name, tarfile.REGTYPE, **fields), data


@pytest.mark.parametrize(
    ("entry", "path", "want"),
    [
        pytest.param(
            _file("bin/su", uid=0, gid=0, mode=0o4755),
            "bin/su",
            (0, 0, 0o4755),
            id="a setuid file keeps its setuid bit",
        ),
        pytest.param(
            _file("tmp/f", uid=1000, gid=2000, mode=0o640),
            "tmp/f",
            (1000, 2000, 0o640),
            id="a file gets its uid gid and mode",
        ),
        pytest.param(
            (info("tmp", tarfile.DIRTYPE, mode=0o1777, uid=0, gid=0), b""),
            "tmp",
            (0, 0, 0o1777),
            id="a sticky directory keeps its sticky bit",
        ),
        pytest.param(
            (info("shared", tarfile.DIRTYPE, mode=0o2775, uid=5, gid=6), b""),
            "shared",
            (5, 6, 0o2775),
            id="a setgid directory keeps its owner and setgid bit",
        ),
        pytest.param(
            (info("run/fifo", tarfile.FIFOTYPE, mode=0o620, uid=7, gid=8), b""),
            "run/fifo",
            (7, 8, 0o620),
            id="a FIFO gets its owner and mode",
        ),
    ],
)
def test_owner_and_mode_are_applied(
    stack: Stack,
    entry: tuple[tarfile.TarInfo, bytes],
    path: str,
    want: tuple[int, int, int],
) -> None:
    stack.apply([entry])

    st = os.lstat(stack.snapshots[0] / path)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == want
    assert st.st_mtime == 1_700_000_000


def test_ownership_can_be_left_to_the_caller(stack: Stack) -> None:
    stack.apply([_file("f", uid=1234)], options=ApplyOptions(set_ownership=False))

    assert os.lstat(stack.snapshots[0] / "f").st_uid == os.getuid()


def test_symlink_owner_and_mtime_do_not_touch_its_target(stack: Stack) -> None:
    link = info("l", tarfile.SYMTYPE, linkname="target", uid=3, gid=4, mtime=1_000)
    stack.apply([_file("target", mtime=2_000), (link, b"")])

    root = stack.snapshots[0]
    st_link, st_target = os.lstat(root / "l"), os.lstat(root / "target")
    assert (st_link.st_uid, st_link.st_gid, st_link.st_mtime) == (3, 4, 1_000)
    assert (st_target.st_uid, st_target.st_mtime) == (0, 2_000)


def test_xattrs_and_file_capabilities_survive_chown(stack: Stack) -> None:
    headers = {
        "SCHILY.xattr.user.note": "hello",
        "SCHILY.xattr.security.capability": CAP_NET_BIND.decode("latin-1"),
    }
    # tarfile writes PAX values as UTF-8; the unpacker reads the raw bytes back.
    headers["SCHILY.xattr.security.capability"] = CAP_NET_BIND.decode(
        "utf-8", "surrogateescape"
    )
    stack.apply([_file("bin/ping", uid=0, gid=0, mode=0o755, pax_headers=headers)])

    path = stack.snapshots[0] / "bin/ping"
    assert os.getxattr(path, "user.note") == b"hello"
    assert os.getxattr(path, "security.capability") == CAP_NET_BIND


def test_sparse_file_keeps_its_holes(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "sparse"
    with open(source, "wb") as f:
        f.seek(8 << 20)
        f.write(b"end")
    archive = tmp_path / "sparse.tar"
    subprocess.run(
        [
            "tar",
            "--sparse",
            "--format=gnu",
            "-cf",
            str(archive),
            "-C",
            str(tmp_path),
            "sparse",
        ],
        check=True,
    )

    stack.apply(archive.read_bytes())

    out = stack.snapshots[0] / "sparse"
    assert out.read_bytes() == source.read_bytes()
    assert os.stat(out).st_blocks * 512 < 1 << 20


def test_root_entry_sets_the_snapshot_root(stack: Stack) -> None:
    stack.apply([(info("./", tarfile.DIRTYPE, mode=0o700, uid=9, gid=9), b""), "f"])

    st = os.lstat(stack.snapshots[0])
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (9, 0o700)


def test_copied_up_parent_keeps_the_lower_directory_metadata(stack: Stack) -> None:
    opt = info("opt", tarfile.DIRTYPE, mode=0o750, uid=11, gid=12, mtime=5_000)
    stack.apply([(opt, b""), "opt/a"])
    stack.apply(["opt/b"])

    st = os.lstat(stack.snapshots[1] / "opt")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_mtime) == (
        11,
        12,
        0o750,
        5_000,
    )


def test_hardlink_to_a_lower_file_copies_it_up_with_metadata(stack: Stack) -> None:
    stack.apply([_file("bin/tool", b"code", uid=21, mode=0o4711)])
    stack.apply(["bin/alias => bin/tool"])

    top = stack.snapshots[1] / "bin"
    st = os.lstat(top / "tool")
    assert (top / "alias").read_bytes() == b"code"
    assert (st.st_nlink, st.st_uid, stat.S_IMODE(st.st_mode)) == (2, 21, 0o4711)


DEVICES = [
    (info("dev/console", tarfile.CHRTYPE, devmajor=5, devminor=1, mode=0o600), b""),
    (info("dev/ptmx", tarfile.CHRTYPE, devmajor=5, devminor=2, mode=0o666), b""),
    (info("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666), b""),
    (info("run/fifo", tarfile.FIFOTYPE, mode=0o600), b""),
]


@pytest.fixture
def nodev_stack(tmp_path: Path) -> Iterator[Stack]:
    base = tmp_path / "nodev"
    base.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "nodev,size=16m", "tmpfs", str(base)], check=True
    )
    try:
        yield Stack(base / "snapshots", [])
    finally:
        subprocess.run(["umount", str(base)], check=True)


def test_C20_devices_are_created_on_a_nodev_mount_without_opening(
    nodev_stack: Stack, tmp_path: Path
) -> None:
    nodev_stack.apply(DEVICES)

    got = overlay_tree(nodev_stack.snapshots, tmp_path / "merged")
    assert got == expand(
        [
            "dev/",
            "dev/console c 5,1",
            "dev/ptmx c 5,2",
            "dev/null c 1,3",
            "run/",
            "run/fifo |",
        ]
    )
    assert (
        stat.S_IMODE(os.lstat(nodev_stack.snapshots[0] / "dev/console").st_mode)
        == 0o600
    )


def test_C20_devices_can_be_skipped_with_one_log_line(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="sandpull.unpack"):
        applied = stack.apply(DEVICES, options=ApplyOptions(devices=False))

    root = stack.snapshots[0]
    assert sorted(p.name for p in root.rglob("*")) == ["dev", "fifo", "run"]
    assert applied.entries == 4
    lines = [r.getMessage() for r in caplog.records if "device" in r.getMessage()]
    assert len(lines) == 1 and "skipped 3 device nodes" in lines[0]
