"""Tar entries of a layer stream, one at a time, with bounded extension headers.

sandpull reads tar headers itself (ustar, GNU and PAX, GNU sparse files): one
pass over a large read buffer, no per-block copies. It is strict where sandpull
needs it: a header that is neither valid nor the end marker, or a stream that
ends without the end marker, is a truncated layer rather than a quiet end.
Entries come out as ``tarfile.TarInfo`` values, with ``size`` the file's real
size and ``sparse`` its data map for sparse files.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from sandpull.errors import HostileEntryError, SandpullError, VerificationError
from sandpull.oci import Digest
from sandpull.unpack.stream import CHUNK, LayerStream

#: Largest PAX or GNU long-name header sandpull reads into memory.
MAX_EXTENSION_HEADER = 1 << 20
#: Most data blocks of one sparse map (old GNU extension blocks or a PAX 1.0 map).
MAX_SPARSE_BLOCKS = 2048

_BLOCK = 512
_END = bytes(_BLOCK)
_POSIX_MAGIC = b"ustar\x0000"
_REGULAR = frozenset(b"07S\0")
_SUPPORTED = frozenset(b"01234567SxgXLK\0")
_PAX = frozenset(b"xX")
_PAX_NUMBERS = {"uid": int, "gid": int, "size": int, "mtime": float}


class _Entry(tarfile.TarInfo):
    """A TarInfo that also carries what reading a sparse file needs."""

    __slots__ = ("sparse_extended", "sparse_stored")
    sparse_extended: bool
    sparse_stored: int


class _BadHeader(Exception):
    """A header block that is neither valid nor the end marker."""


@dataclass
class _Extensions:
    """What extension headers said about the entry that follows them."""

    long_name: str | None = None
    long_link: str | None = None
    pax: dict[str, str] | None = None
    pax_raw: bytes = b""
    seen: bool = False
    sparse_in_data: bool = False  # a PAX 1.0 map precedes the data
    global_pax: dict[str, str] = field(default_factory=dict)


class TarReader:
    """Reads headers and entry data from a :class:`LayerStream`.

    ``read`` gives the current entry's data (stored bytes, at most what is left
    of it); whatever the caller leaves unread is skipped before the next header.
    """

    def __init__(self, stream: LayerStream, layer: Digest) -> None:
        self._stream = stream
        self._layer = layer
        self._buffer = b""
        self._position = 0
        self.offset = 0  # of the next byte in the tar stream
        self._left = 0  # data bytes of the current entry not yet read
        self._padding = 0
        self.end_marker = False
        self._global_pax: dict[str, str] = {}

    # Data ---------------------------------------------------------------------

    def read(self, size: int = CHUNK, /) -> bytes:
        """Up to ``size`` bytes of the current entry; ``b""`` at its end or EOF."""
        size = min(size, self._left)
        if size <= 0:
            return b""
        data = self._take(size)
        self._left -= len(data)
        return data

    def _take(self, size: int) -> bytes:
        available = len(self._buffer) - self._position
        if not available:
            if size >= CHUNK // 4:
                return self._direct(size)
            self._buffer = self._stream.read(CHUNK)
            self._position = 0
            available = len(self._buffer)
            if not available:
                return b""
        start = self._position
        if start == 0 and size >= available:
            data, self._buffer = self._buffer, b""
            self.offset += available
            return data
        size = min(size, available)
        self._position = start + size
        self.offset += size
        return self._buffer[start : start + size]

    def _direct(self, size: int) -> bytes:
        """Large data straight from the stream, keeping any excess buffered."""
        data = self._stream.read(size)
        if len(data) > size:
            self._buffer, self._position = data, size
            data = data[:size]
        self.offset += len(data)
        return data

    def _exact(self, size: int) -> bytes:
        """``size`` bytes, fewer only at the end of the stream."""
        first = self._take(size)
        if len(first) == size or not first:
            return first
        parts = [first]
        got = len(first)
        while got < size:
            more = self._take(size - got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def _skip_rest(self) -> None:
        left = self._left + self._padding
        self._left = self._padding = 0
        while left:
            skipped = len(self._take(min(left, CHUNK)))
            if not skipped:
                return  # the next header read reports the truncation
            left -= skipped

    # Headers ------------------------------------------------------------------

    def next(self) -> tarfile.TarInfo | None:
        """The next entry, or None after the end marker (or for an empty stream)."""
        self._skip_rest()
        ext = _Extensions(global_pax=self._global_pax)
        while True:
            at = self.offset
            block = self._exact(_BLOCK)
            if not block:
                if at == 0 and not ext.seen:
                    return None  # an empty stream is an empty layer
                raise self._error(
                    f"stream ends at offset {at} without the tar end marker"
                )
            if len(block) < _BLOCK:
                raise self._error(f"bad tar header at offset {at}: truncated header")
            if block == _END and not ext.seen:
                self.end_marker = True
                return None
            try:
                entry = _parse(block, at)
            except _BadHeader as exc:
                raise self._error(f"bad tar header at offset {at}: {exc}") from None
            kind = entry.type
            if kind in (b"x", b"X", b"g", b"L", b"K"):
                self._extension(entry, ext)
                continue
            self._finish(entry, ext)
            has_data = kind[0] in _REGULAR or kind[0] not in _SUPPORTED
            data = entry.size if has_data else 0
            if entry.sparse is not None:
                data = self._sparse_data(entry, ext)
            self._left = data
            self._padding = -data % _BLOCK
            return entry

    def _extension(self, header: tarfile.TarInfo, ext: _Extensions) -> None:
        if header.size > MAX_EXTENSION_HEADER:
            raise HostileEntryError(
                f"read layer {self._layer.short}: extension header at offset "
                f"{header.offset} is {header.size} bytes, "
                f"want at most {MAX_EXTENSION_HEADER}"
            )
        data = self._exact(header.size)
        if len(data) < header.size:
            raise self._error(
                f"stream ends at offset {self.offset} inside an extension header"
            )
        self._exact(-header.size % _BLOCK)
        ext.seen = True
        kind = header.type
        if kind == b"L":
            ext.long_name = _text(data.split(b"\0", 1)[0])
        elif kind == b"K":
            ext.long_link = _text(data.split(b"\0", 1)[0])
        elif kind == b"g":
            ext.global_pax.update(self._records(data, header.offset))
            ext.seen = False  # a global header stands alone
        else:
            pax = dict(ext.global_pax)
            pax.update(self._records(data, header.offset))
            ext.pax = pax
            ext.pax_raw = data

    def _records(self, data: bytes, at: int) -> dict[str, str]:
        records: dict[str, str] = {}
        position = 0
        while position < len(data) and data[position]:
            space = data.find(b" ", position, position + 24)
            try:
                length = int(data[position:space]) if space > position else 0
            except ValueError:
                length = 0
            end = position + length
            record = data[space + 1 : end]
            if length <= 0 or end > len(data) or not record.endswith(b"\n"):
                raise self._error(f"bad pax header at offset {at}")
            key, equals, value = record[:-1].partition(b"=")
            if not equals:
                raise self._error(f"bad pax header at offset {at}")
            records[_text(key)] = _text(value)
            position = end
        return records

    def _finish(self, entry: _Entry, ext: _Extensions) -> None:
        if ext.long_name is not None:
            entry.name = ext.long_name
        if ext.long_link is not None:
            entry.linkname = ext.long_link
        if entry.type == tarfile.DIRTYPE:
            entry.name = entry.name.rstrip("/")
        if ext.pax is None:
            return
        pax = ext.pax
        entry.pax_headers = pax
        for key, value in pax.items():
            if key == "path" or key == "GNU.sparse.name":
                entry.name = value.rstrip("/") if key == "path" else value
            elif key == "linkpath":
                entry.linkname = value
            elif key in _PAX_NUMBERS:
                try:
                    setattr(entry, key, _PAX_NUMBERS[key](value))
                except ValueError:
                    setattr(entry, key, 0)
            elif key in ("uname", "gname"):
                setattr(entry, key, value)
        if "GNU.sparse.map" in pax:
            numbers = [int(x) for x in pax["GNU.sparse.map"].split(",") if x]
            _set_sparse(entry, list(zip(numbers[::2], numbers[1::2], strict=False)))
        elif "GNU.sparse.offset" in pax:
            _set_sparse(entry, _sparse_00(ext.pax_raw))
        elif pax.get("GNU.sparse.major") == "1" and pax.get("GNU.sparse.minor") == "0":
            _set_sparse(entry, [])
            ext.sparse_in_data = True
        else:
            return
        real = pax.get("GNU.sparse.realsize", pax.get("GNU.sparse.size"))
        # The stored size (header or pax "size") is what the archive holds.
        entry.sparse_stored = entry.size
        if real is not None:
            entry.size = int(real)

    def _sparse_data(self, entry: _Entry, ext: _Extensions) -> int:
        """Stored data bytes of a sparse entry once its map is read."""
        stored = entry.sparse_stored
        if entry.type == b"S":
            self._old_gnu_sparse(entry)
        elif ext.sparse_in_data:
            stored -= self._pax_10_map(entry)
        return max(stored, 0)

    def _old_gnu_sparse(self, entry: _Entry) -> None:
        extended: bool = entry.sparse_extended
        blocks = 0
        while extended:
            blocks += 1
            block = self._exact(_BLOCK)
            if len(block) < _BLOCK or blocks > MAX_SPARSE_BLOCKS:
                raise self._error(f"bad sparse map of entry {entry.name[:256]!r}")
            for position in range(0, 21 * 24, 24):
                try:
                    offset = _number(block[position : position + 12])
                    size = _number(block[position + 12 : position + 24])
                except _BadHeader:
                    break
                if offset and size:
                    _sparse(entry).append((offset, size))
            extended = bool(block[504])

    def _pax_10_map(self, entry: _Entry) -> int:
        """Read a PAX 1.0 sparse map at the start of the data; return its bytes."""
        numbers: list[int] = []
        text = b""
        used = 0
        wanted: int | None = None
        while wanted is None or len(numbers) < 1 + 2 * wanted:
            if used // _BLOCK >= MAX_SPARSE_BLOCKS:
                raise self._error(f"bad sparse map of entry {entry.name[:256]!r}")
            block = self._exact(_BLOCK)
            if len(block) < _BLOCK:
                raise self._error(f"bad sparse map of entry {entry.name[:256]!r}")
            used += _BLOCK
            text += block
            *lines, text = text.split(b"\n")
            try:
                numbers.extend(int(line) for line in lines)
            except ValueError:
                raise self._error(
                    f"bad sparse map of entry {entry.name[:256]!r}"
                ) from None
            if numbers and wanted is None:
                wanted = numbers[0]
        pairs = numbers[1 : 1 + 2 * (wanted or 0)]
        _set_sparse(entry, list(zip(pairs[::2], pairs[1::2], strict=True)))
        return used

    def _error(self, message: str) -> SandpullError:
        if self._stream.failure is not None:
            return self._stream.failure
        return VerificationError(f"read layer {self._layer.short}: {message}")


def _sparse(entry: tarfile.TarInfo) -> list[tuple[int, int]]:
    """The sparse map (typeshed types ``TarInfo.sparse`` loosely)."""
    return cast(list[tuple[int, int]], entry.sparse)


def _set_sparse(entry: tarfile.TarInfo, pairs: list[tuple[int, int]]) -> None:
    entry.sparse = cast(Any, pairs)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _number(field: bytes) -> int:
    first = field[0] if field else 0
    if first == 0o200 or first == 0o377:
        value = int.from_bytes(field[1:], "big")
        return value - 256 ** (len(field) - 1) if first == 0o377 else value
    digits = field.split(b"\0", 1)[0].strip()
    try:
        return int(digits, 8) if digits else 0
    except ValueError:
        raise _BadHeader("invalid number") from None


def _checksum_ok(block: bytes) -> bool:
    recorded = _number(block[148:156])
    unsigned = sum(block) - sum(block[148:156]) + 8 * 32
    if recorded == unsigned:
        return True
    signed = sum(b - 256 if b > 127 else b for b in block)
    signed -= sum(b - 256 if b > 127 else b for b in block[148:156])
    return recorded == signed + 8 * 32


def _parse(block: bytes, at: int) -> _Entry:
    """One header block as a TarInfo (names not yet patched by extensions)."""
    if not _checksum_ok(block):
        raise _BadHeader("bad checksum")
    entry = _Entry(_text(block[0:100].split(b"\0", 1)[0]))
    entry.mode = _number(block[100:108])
    entry.uid = _number(block[108:116])
    entry.gid = _number(block[116:124])
    entry.size = _number(block[124:136])
    entry.mtime = _number(block[136:148])
    entry.type = block[156:157]
    entry.linkname = _text(block[157:257].split(b"\0", 1)[0])
    entry.uname = _text(block[265:297].split(b"\0", 1)[0])
    entry.gname = _text(block[297:329].split(b"\0", 1)[0])
    entry.devmajor = _number(block[329:337])
    entry.devminor = _number(block[337:345])
    entry.offset = at
    entry.pax_headers = {}
    if entry.size < 0:
        raise _BadHeader("negative size")
    if block[257:265] == _POSIX_MAGIC and block[345] and entry.type not in b"LKS":
        entry.name = _text(block[345:500].split(b"\0", 1)[0]) + "/" + entry.name
    if entry.type == b"\0" and entry.name.endswith("/"):
        entry.type = tarfile.DIRTYPE
    if entry.type == b"S":
        _old_gnu_header_sparse(entry, block)
    if entry.type == tarfile.DIRTYPE:
        entry.name = entry.name.rstrip("/")
    return entry


def _old_gnu_header_sparse(entry: _Entry, block: bytes) -> None:
    sparse: list[tuple[int, int]] = []
    for position in range(386, 386 + 4 * 24, 24):
        try:
            offset = _number(block[position : position + 12])
            size = _number(block[position + 12 : position + 24])
        except _BadHeader:
            break
        sparse.append((offset, size))
    _set_sparse(entry, sparse)
    entry.sparse_extended = bool(block[482])
    entry.sparse_stored = entry.size
    entry.size = _number(block[483:495])


def _sparse_00(raw: bytes) -> list[tuple[int, int]]:
    offsets: list[int] = []
    sizes: list[int] = []
    for record in raw.split(b"\n"):
        _, _, pair = record.partition(b" ")
        key, _, value = pair.partition(b"=")
        if key == b"GNU.sparse.offset":
            offsets.append(int(value))
        elif key == b"GNU.sparse.numbytes":
            sizes.append(int(value))
    return list(zip(offsets, sizes, strict=False))


def entries(
    stream: LayerStream, layer: Digest
) -> Iterator[tuple[TarReader, tarfile.TarInfo]]:
    """Yield the entries of ``stream`` with the reader of their data.

    The caller may read the current entry's data from the reader (at most
    ``entry.size`` bytes, or the sum of a sparse map's sizes) before asking for
    the next entry. After the last entry the rest of the stream is drained into
    its hasher.
    """
    reader = TarReader(stream, layer)
    try:
        while (entry := reader.next()) is not None:
            yield reader, entry
    except ValueError as exc:
        raise reader._error(f"truncated or corrupt tar: {exc}") from exc
    except SandpullError as exc:
        if stream.failure is None or stream.failure is exc:
            raise
        raise stream.failure from exc
    stream.drain()
    if stream.size and not reader.end_marker:
        raise VerificationError(
            f"read layer {layer.short}: stream ends without the tar end marker"
        )
