"""Tar entries of a layer stream, one at a time, with bounded extension headers.

Python's ``tarfile`` in stream mode does the header parsing. It is strict where
sandpull needs it: a header that is neither valid nor the end marker, or a stream
that ends without the end marker, is a truncated layer rather than a quiet end.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from typing import Any, cast

from sandpull.errors import HostileEntryError, SandpullError, VerificationError
from sandpull.oci import Digest
from sandpull.unpack.stream import LayerStream

#: Largest PAX or GNU long-name header sandpull reads into memory.
MAX_EXTENSION_HEADER = 1 << 20
#: tarfile copies its remaining buffer on every read, so keep it small.
_TAR_BUFFER = 64 << 10

_EXTENSION_TYPES = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)


# Header errors tarfile raises but does not export in its type stubs.
_EOF_HEADER: type[Exception] = tarfile.EOFHeaderError  # type: ignore[attr-defined]
_EMPTY_HEADER: type[Exception] = tarfile.EmptyHeaderError  # type: ignore[attr-defined]


class _CheckedTarInfo(tarfile.TarInfo):
    """A TarInfo that bounds extension headers and records how the archive ended."""

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> Any:
        try:
            return super().fromtarfile(tarfile_)
        except _EOF_HEADER:
            tarfile_.sandpull_end_marker = True  # type: ignore[attr-defined]
            raise
        except _EMPTY_HEADER:
            if tarfile_.offset == 0:
                return None  # an empty stream is an empty layer
            raise VerificationError(
                f"stream ends at offset {tarfile_.offset} without the tar end marker"
            ) from None
        except tarfile.HeaderError as exc:
            raise VerificationError(
                f"bad tar header at offset {tarfile_.offset}: {exc}"
            ) from exc

    def _proc_member(self, tarfile_: tarfile.TarFile) -> Any:
        if self.type in _EXTENSION_TYPES and self.size > MAX_EXTENSION_HEADER:
            raise HostileEntryError(
                f"extension header at offset {self.offset} is "
                f"{self.size} bytes, want at most {MAX_EXTENSION_HEADER}"
            )
        return super()._proc_member(tarfile_)  # type: ignore[misc]


def entries(
    stream: LayerStream, layer: Digest
) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """Yield the entries of ``stream``; the archive object is valid for each entry.

    The caller may read the current entry's data from ``archive.fileobj`` (at most
    ``entry.size`` bytes) before asking for the next entry. After the last entry
    the rest of the stream is drained into its hasher.
    """
    try:
        archive = tarfile.open(  # noqa: SIM115 (closed with the stream)
            fileobj=cast(Any, stream),
            mode="r|",
            bufsize=_TAR_BUFFER,
            tarinfo=_CheckedTarInfo,
            errors="surrogateescape",
        )
        while (entry := archive.next()) is not None:
            # Stream mode keeps every member otherwise.
            archive.members.clear()  # type: ignore[attr-defined]
            yield archive, entry
    except tarfile.TarError as exc:
        raise _translate(stream, layer, exc) from exc
    except SandpullError as exc:
        if stream.failure is exc:
            raise
        if stream.failure is not None:
            raise stream.failure from exc
        raise type(exc)(f"read layer {layer.short}: {exc}") from exc
    _check_end(stream, archive, layer)


def _check_end(stream: LayerStream, archive: tarfile.TarFile, layer: Digest) -> None:
    stream.drain()
    if stream.size and not getattr(archive, "sandpull_end_marker", False):
        raise VerificationError(
            f"read layer {layer.short}: stream ends without the tar end marker"
        )


def _translate(stream: LayerStream, layer: Digest, exc: Exception) -> SandpullError:
    if stream.failure is not None:
        return stream.failure
    return VerificationError(
        f"read layer {layer.short}: truncated or corrupt tar: {exc}"
    )
