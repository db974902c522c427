"""``apply_layer``: one layer blob into one fresh snapshot directory."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sandpull.errors import (
    FailedPrecondition,
    HostileEntryError,
    SandpullError,
    VerificationError,
    from_os_error,
)
from sandpull.oci import Compression, Digest
from sandpull.unpack.entries import EntryApplier, Policy
from sandpull.unpack.snapshot import SnapshotWriter
from sandpull.unpack.stream import LayerStream, open_layer_stream
from sandpull.unpack.tarstream import entries

_log = logging.getLogger(__name__)

#: errno values that mean the entry itself is unusable rather than the disk.
_ENTRY_ERRNOS = frozenset(
    {
        errno.ENAMETOOLONG,
        errno.EINVAL,
        errno.ELOOP,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
        errno.EMLINK,
        errno.E2BIG,
    }
)


@dataclass(frozen=True)
class ApplyOptions:
    """How a layer is applied.

    ``devices``: create device nodes (as root); when False they are skipped with
    one log line per layer. ``max_uncompressed``: fail with ``ResourceExhausted``
    past this many uncompressed bytes. ``set_ownership``: chown entries to their
    uid and gid (needs root).
    """

    devices: bool = True
    max_uncompressed: int | None = None
    set_ownership: bool = True


@dataclass(frozen=True)
class AppliedLayer:
    """The outcome of one applied layer."""

    diff_id: Digest  # over the whole uncompressed stream, trailing bytes included
    size: int  # uncompressed bytes
    entries: int


def apply_layer(
    source: BinaryIO,
    *,
    compression: Compression,
    target: Path,
    lowers: Sequence[Path],
    layer: Digest,
    diff_id: Digest | None,
    options: ApplyOptions = ApplyOptions(),
) -> AppliedLayer:
    """Apply the layer read from ``source`` (compressed bytes) into ``target``.

    ``target`` is a fresh, empty directory that receives only this layer's changes
    in overlayfs format; ``lowers`` are the image's already applied snapshots,
    nearest first. Synchronous: run it in a thread. Raises ``VerificationError``
    for a corrupt stream or a diff_id mismatch, ``HostileEntryError`` for an entry
    that would escape or is malformed, ``ResourceExhausted`` past
    ``options.max_uncompressed``. On any error ``target`` holds nothing to trust
    and the caller deletes it; nothing is ever written outside it.
    """
    _check_target(target, layer)
    stream = open_layer_stream(
        source,
        compression=compression,
        layer=layer,
        algorithm=diff_id.algorithm if diff_id else "sha256",
        limit=options.max_uncompressed,
    )
    policy = Policy(devices=options.devices, ownership=options.set_ownership)
    count = _apply_entries(stream, target, lowers, layer, policy)

    applied = AppliedLayer(stream.digest(), stream.size, count)
    if diff_id is not None and applied.diff_id != diff_id:
        raise VerificationError(
            f"verify layer {layer.short}: diff_id is {applied.diff_id}, want {diff_id}"
        )
    if policy.skipped_devices:
        _log.info(
            "layer %s: skipped %d device nodes (%s)",
            layer.short,
            len(policy.skipped_devices),
            ", ".join(policy.skipped_devices[:5]),
        )
    _log.debug(
        "applied layer %s: %d entries, %d bytes", layer.short, count, stream.size
    )
    return applied


def _check_target(target: Path, layer: Digest) -> None:
    try:
        if any(os.scandir(target)):
            raise FailedPrecondition(
                f"apply layer {layer.short}: target {target} is not empty"
            )
    except OSError as exc:
        raise from_os_error(f"apply layer {layer.short}: open target", exc) from exc


def _apply_entries(
    stream: LayerStream,
    target: Path,
    lowers: Sequence[Path],
    layer: Digest,
    policy: Policy,
) -> int:
    count = 0
    writer = SnapshotWriter(target, lowers)
    applier = EntryApplier(writer, layer, policy)
    name = ""
    try:
        for archive, entry in entries(stream, layer):
            name = entry.name
            applier.apply(entry, archive)
            count += 1
        writer.finish()
    except OSError as exc:
        raise _translate(exc, layer, name) from exc
    finally:
        writer.close()
    return count


def _translate(exc: OSError, layer: Digest, name: str) -> SandpullError:
    step = f"apply layer {layer.short} entry {name[:256]!r}"
    if exc.errno in _ENTRY_ERRNOS:
        return HostileEntryError(f"{step}: {exc.strerror}")
    return from_os_error(step, exc)
