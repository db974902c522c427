"""Layer tars built in memory from a small table of entries.

An entry is written the way the field cases spell it: ``a/`` a directory, ``a/b``
a file whose content is its own name, ``a/b=text`` a file with content ``text``,
``a -> b`` a symlink, ``a => b`` a hardlink, ``.wh.x`` a whiteout. Entries that need
more (modes, owners, devices, xattrs) are ``tarfile.TarInfo`` values with data.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable

Spec = str | tuple[tarfile.TarInfo, bytes]


def entry(spec: str) -> tuple[tarfile.TarInfo, bytes]:
    """The tar entry a spec string names."""
    if " -> " in spec:
        name, target = spec.split(" -> ", 1)
        return info(name, tarfile.SYMTYPE, linkname=target), b""
    if " => " in spec:
        name, target = spec.split(" => ", 1)
        return info(name, tarfile.LNKTYPE, linkname=target), b""
    if spec.endswith("/") and "=" not in spec:
        return info(spec, tarfile.DIRTYPE, mode=0o755), b""
    name, sep, text = spec.partition("=")
    data = text.encode() if sep else name.encode()
    return info(name, tarfile.REGTYPE, size=len(data)), data


def info(
    name: str, type_: bytes = tarfile.REGTYPE, **fields: object
) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = type_
    member.mode = 0o755 if type_ == tarfile.DIRTYPE else 0o644
    member.mtime = 1_700_000_000
    for key, value in fields.items():
        setattr(member, key, value)
    return member


def build(specs: Iterable[Spec], *, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """An uncompressed layer tar holding ``specs`` in order."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        for spec in specs:
            member, data = entry(spec) if isinstance(spec, str) else spec
            if member.isreg():
                member.size = len(data)
            archive.addfile(member, io.BytesIO(data) if member.isreg() else None)
    return buffer.getvalue()
