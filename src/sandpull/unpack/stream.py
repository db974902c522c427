"""The uncompressed stream of a layer: decompress, count, bound and hash.

``open_layer_stream`` checks the compressed bytes' magic against the media type's
compression before anything is extracted, then hands out a reader whose every byte
goes through the diff_id hasher, so trailing bytes after the tar end marker are
hashed once drained.
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO, Protocol

import zstandard
from isal import igzip

from sandpull.errors import ResourceExhausted, SandpullError, VerificationError
from sandpull.oci import Compression, Digest

CHUNK = 1 << 20

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class Reader(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class _Prefixed:
    """``prefix`` followed by the rest of ``source``."""

    def __init__(self, prefix: bytes, source: Reader) -> None:
        self._prefix = prefix
        self._source = source

    def read(self, size: int = -1, /) -> bytes:
        if self._prefix:
            head, self._prefix = self._prefix, b""
            return head
        return self._source.read(size)

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)


def _sniff(data: bytes) -> Compression:
    if data.startswith(_GZIP_MAGIC):
        return Compression.GZIP
    if data.startswith(_ZSTD_MAGIC) or _is_zstd_skippable(data):
        return Compression.ZSTD
    return Compression.NONE


def _is_zstd_skippable(data: bytes) -> bool:
    # Skippable frames use magic 0x184D2A50..0x184D2A5F, little-endian.
    return len(data) >= 4 and data[1:4] == b"\x2a\x4d\x18" and data[0] >> 4 == 5


def _read_head(source: Reader, size: int) -> bytes:
    head = b""
    while len(head) < size:
        more = source.read(size - len(head))
        if not more:
            break
        head += more
    return head


def _decompressor(source: Reader, compression: Compression) -> Reader:
    if compression is Compression.GZIP:
        gzip: Reader = igzip.GzipFile(  # type: ignore[no-untyped-call]
            fileobj=source, mode="rb"
        )
        return gzip
    if compression is Compression.ZSTD:
        return _ZstdFrames(source)
    return source


class _ZstdFrames:
    """Zstd frames one after another; raises ``EOFError`` on a truncated frame.

    Compressed input goes in small slices so that one call's output stays bounded
    (a zstd block of 4 bytes can stand for 128 KiB).
    """

    _SLICE = 2048

    def __init__(self, source: Reader) -> None:
        self._source = source
        self._pending = memoryview(b"")
        self._frame = zstandard.ZstdDecompressor().decompressobj()
        self._started = False

    def read(self, size: int = CHUNK, /) -> bytes:
        out: list[bytes] = []
        produced = 0
        while produced < size:
            if not self._pending:
                self._pending = memoryview(self._source.read(CHUNK))
                if not self._pending:
                    self._check_complete()
                    break
            data = self._feed()
            out.append(data)
            produced += len(data)
        return b"".join(out)

    def _feed(self) -> bytes:
        if self._frame.eof:
            self._frame = zstandard.ZstdDecompressor().decompressobj()
        piece = self._pending[: self._SLICE]
        self._pending = self._pending[self._SLICE :]
        self._started = True
        data = self._frame.decompress(piece)
        if self._frame.eof and self._frame.unused_data:
            self._pending = memoryview(self._frame.unused_data + self._pending)
        return data

    def _check_complete(self) -> None:
        if self._started and not self._frame.eof:
            raise EOFError("zstd stream ends inside a frame")


class LayerStream:
    """Uncompressed bytes of one layer; every byte read is counted and hashed."""

    def __init__(
        self, raw: Reader, *, layer: Digest, algorithm: str, limit: int | None
    ) -> None:
        self._raw = raw
        self._layer = layer
        self._hasher = hashlib.new(algorithm)
        self._limit = limit
        self.size = 0
        self.at_eof = False
        #: The sandpull error this stream raised, kept because tarfile may wrap it.
        self.failure: SandpullError | None = None

    def read(self, size: int = CHUNK, /) -> bytes:
        if self.failure is not None:
            raise self.failure
        try:
            data = self._raw.read(size if size >= 0 else CHUNK)
        except (EOFError, OSError, zstandard.ZstdError) as exc:
            raise self._fail(
                VerificationError(f"decompress layer {self._layer.short}: {exc}")
            ) from exc
        if not data:
            self.at_eof = True
            return data
        self.size += len(data)
        self._hasher.update(data)
        if self._limit is not None and self.size > self._limit:
            raise self._fail(
                ResourceExhausted(
                    f"decompress layer {self._layer.short}: "
                    f"uncompressed size exceeds {self._limit} bytes"
                )
            )
        return data

    def drain(self) -> None:
        """Read to the end so trailing bytes reach the hasher."""
        while self.read(CHUNK):
            pass

    def digest(self) -> Digest:
        return Digest(self._hasher.name, self._hasher.hexdigest())

    def _fail(self, error: SandpullError) -> SandpullError:
        self.failure = error
        return error


def open_layer_stream(
    source: BinaryIO | Reader,
    *,
    compression: Compression,
    layer: Digest,
    algorithm: str = "sha256",
    limit: int | None = None,
) -> LayerStream:
    """Check ``source``'s magic against ``compression`` and return its stream.

    Raises ``VerificationError`` before anything is decompressed when the magic
    bytes disagree with the media type's compression.
    """
    head = _read_head(source, len(_ZSTD_MAGIC))
    found = _sniff(head)
    if found is not compression:
        raise VerificationError(
            f"open layer {layer.short}: media type says {compression.value}, "
            f"content is {found.value if head else 'empty'}"
        )
    raw = _decompressor(_Prefixed(head, source), compression)
    return LayerStream(raw, layer=layer, algorithm=algorithm, limit=limit)
