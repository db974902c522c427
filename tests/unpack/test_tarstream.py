"""sandpull's tar header reader against archives made by GNU tar and tarfile.

Each archive is read twice, by Python's ``tarfile`` and by sandpull's reader, and
every entry must come out the same: name, type, owner, mode, times, link, size,
sparse map, PAX records and data.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from sandpull.errors import HostileEntryError, VerificationError
from sandpull.oci import Compression, Digest
from sandpull.unpack import tarstream
from sandpull.unpack.stream import open_layer_stream
from tests.unpack.conftest import Stack

Entry = tuple[object, ...]


def _by_tarfile(blob: bytes) -> list[Entry]:
    out: list[Entry] = []
    with tarfile.open(fileobj=io.BytesIO(blob), errors="surrogateescape") as archive:
        for info in archive:
            data = b""
            if info.isreg():
                handle = archive.extractfile(info)
                assert handle is not None
                data = _stored(handle.read(), info.sparse)
            out.append(_fields(info, data))
    return out


def _stored(content: bytes, sparse: object) -> bytes:
    """The bytes an archive stores for ``content``: only the map's pieces."""
    if sparse is None:
        return content
    return b"".join(content[o : o + n] for o, n in sparse)  # type: ignore[attr-defined]


def _by_sandpull(blob: bytes) -> list[Entry]:
    layer = Digest.of(blob)
    stream = open_layer_stream(
        io.BytesIO(blob), compression=Compression.NONE, layer=layer
    )
    out: list[Entry] = []
    for reader, info in tarstream.entries(stream, layer):
        data = b""
        if info.isreg():
            data = _drain(reader)
        out.append(_fields(info, data))
    return out


def _drain(reader: tarstream.TarReader) -> bytes:
    parts = []
    while part := reader.read(7919):
        parts.append(part)
    return b"".join(parts)


def _fields(info: tarfile.TarInfo, data: bytes) -> Entry:
    sparse = list(info.sparse) if info.sparse is not None else None  # type: ignore[call-overload]
    return (
        info.name,
        info.type,
        info.uid,
        info.gid,
        info.mode,
        info.mtime,
        info.linkname,
        info.size,
        sparse,
        dict(info.pax_headers),
        data,
    )


def _gnu_tar(tmp_path: Path, *options: str) -> bytes:
    tree = tmp_path / "tree"
    tree.mkdir()
    with open(tree / "sparse", "wb") as f:
        f.write(b"head")
        f.seek(3 << 20)
        f.write(b"middle" * 100)
        f.seek(9 << 20)
        f.write(b"end")
    deep = tree / ("d" * 120) / ("e" * 120)
    deep.mkdir(parents=True)
    (deep / ("f" * 110)).write_bytes(os.urandom(70_000))
    os.symlink("x" * 150, deep / "link")
    os.link(deep / ("f" * 110), tree / "hard")
    os.mkfifo(tree / "fifo")
    (tree / "empty").write_bytes(b"")
    archive = tmp_path / "out.tar"
    subprocess.run(
        ["tar", "--sparse", "--sort=name", *options, "-cf", str(archive), "-C",
         str(tree), "."],
        check=True,
    )  # fmt: skip
    return archive.read_bytes()


def _tarfile_archive(fmt: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        big = tarfile.TarInfo("big-ids")
        big.uid, big.gid, big.size, big.mtime = 3_000_000_000, 2**21 + 5, 5, 1.5e9
        if fmt == tarfile.USTAR_FORMAT:
            big.uid, big.gid, big.mtime = 1000, 1001, 1_500_000_000
        archive.addfile(big, io.BytesIO(b"hello"))
        xattr = tarfile.TarInfo("with-xattr")
        if fmt == tarfile.PAX_FORMAT:
            xattr.pax_headers = {"SCHILY.xattr.user.note": "hi"}
        archive.addfile(xattr)
        old = tarfile.TarInfo("olddir/")
        old.type = tarfile.AREGTYPE
        archive.addfile(old)
        long = tarfile.TarInfo("p/" + "q" * 80 + "/" + "r" * 90)
        long.type, long.linkname = tarfile.SYMTYPE, "t/u"
        if fmt != tarfile.USTAR_FORMAT:
            long.linkname += "v" * 170
        archive.addfile(long)
    return buffer.getvalue()


ARCHIVES: list[object] = [
    pytest.param(
        ("--format=gnu",), id="a GNU tar archive with old GNU sparse reads alike"
    ),
    pytest.param(
        ("--format=pax",), id="a PAX archive with a 1.0 sparse map reads alike"
    ),
    pytest.param(
        ("--format=pax", "--sparse-version=0.1"),
        id="a PAX archive with a 0.1 sparse map reads alike",
    ),
    pytest.param(
        ("--format=pax", "--sparse-version=0.0"),
        id="a PAX archive with a 0.0 sparse map reads alike",
    ),
]


@pytest.mark.parametrize("options", ARCHIVES)
def test_gnu_tar_archives_read_like_tarfile(
    tmp_path: Path, options: tuple[str, ...]
) -> None:
    blob = _gnu_tar(tmp_path, *options)

    assert _by_sandpull(blob) == _by_tarfile(blob)


@pytest.mark.parametrize(
    "fmt",
    [
        pytest.param(
            tarfile.GNU_FORMAT, id="base-256 ids and long links read alike in GNU"
        ),
        pytest.param(tarfile.PAX_FORMAT, id="large ids and xattrs read alike in PAX"),
        pytest.param(tarfile.USTAR_FORMAT, id="ustar prefixed names read alike"),
    ],
)
def test_tarfile_archives_read_like_tarfile(fmt: int) -> None:
    blob = _tarfile_archive(fmt)

    assert _by_sandpull(blob) == _by_tarfile(blob)


@pytest.mark.parametrize("options", ARCHIVES[:4])
def test_sparse_files_apply_with_their_holes(
    stack: Stack, tmp_path: Path, options: tuple[str, ...]
) -> None:
    blob = _gnu_tar(tmp_path, *options)

    stack.apply(blob)

    out = stack.snapshots[0] / "sparse"
    assert out.read_bytes() == (tmp_path / "tree" / "sparse").read_bytes()
    assert os.stat(out).st_blocks * 512 < 1 << 20


def _pax_header(records: bytes) -> bytes:
    info = tarfile.TarInfo("././@PaxHeader")
    info.type, info.size = tarfile.XHDTYPE, len(records)
    header = info.tobuf(tarfile.USTAR_FORMAT)
    return header + records + bytes(-len(records) % 512)


def _file_header(name: str) -> bytes:
    return tarfile.TarInfo(name).tobuf(tarfile.USTAR_FORMAT)


def _huge_extension() -> bytes:
    info = tarfile.TarInfo("././@PaxHeader")
    info.type, info.size = tarfile.XHDTYPE, tarstream.MAX_EXTENSION_HEADER + 1
    return info.tobuf(tarfile.USTAR_FORMAT)


def _bad_checksum() -> bytes:
    block = bytearray(_file_header("f"))
    block[0] ^= 1
    return bytes(block)


BAD: list[object] = [
    pytest.param(
        lambda: _pax_header(b"99 path=x\n") + _file_header("f") + bytes(1024),
        VerificationError,
        id="a pax record longer than its header is rejected",
    ),
    pytest.param(
        lambda: _pax_header(b"11 pathx\n") + _file_header("f") + bytes(1024),
        VerificationError,
        id="a pax record without an equals sign is rejected",
    ),
    pytest.param(
        lambda: _pax_header(b"12 path=x\n") + bytes(1024),
        VerificationError,
        id="an extension header followed by the end marker is rejected",
    ),
    pytest.param(
        lambda: _bad_checksum() + bytes(1024),
        VerificationError,
        id="a header with a wrong checksum is rejected",
    ),
    pytest.param(
        lambda: _huge_extension() + bytes(1024),
        HostileEntryError,
        id="an extension header over its bound is refused before it is read",
    ),
]


@pytest.mark.parametrize(("make", "error"), BAD)
def test_malformed_headers_are_rejected(
    make: Callable[[], bytes], error: type[Exception]
) -> None:
    with pytest.raises(error, match="layer sha256:"):
        _by_sandpull(make())
