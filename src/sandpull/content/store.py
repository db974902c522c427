"""The content store interface and its local-directory implementation.

Layout under the root::

    blobs/<algorithm>/<hex>     committed, verified blobs
    ingest/<algorithm>-<hex>/   resumable downloads (see :mod:`sandpull.content.ingest`)
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from sandpull.content.fsync import fsync_dir
from sandpull.content.ingest import Ingest
from sandpull.errors import InvalidArgument, VerificationError, from_os_error
from sandpull.oci import Descriptor, Digest

_CHUNK = 1 << 20


class ContentStore(Protocol):
    """Blobs addressed by digest; every committed blob was verified.

    - ``has`` and ``walk`` see committed blobs only, never ingests.
    - ``read`` raises :class:`NotFound` for a missing blob and
      :class:`InvalidArgument` when the blob is larger than ``max_size``.
    - ``write_blob`` and ``commit`` are idempotent: committing a blob that
      exists replaces it with identical bytes.
    - ``delete`` of a missing blob is not an error; it returns False.
    - ``verify`` re-hashes a committed blob and raises
      :class:`VerificationError` when its bytes no longer match.
    - ``open_ingest`` resumes a matching earlier ingest; the caller closes it.
    """

    def has(self, digest: Digest) -> bool: ...

    def read(self, digest: Digest, max_size: int) -> bytes: ...

    def write_blob(self, descriptor: Descriptor, data: bytes) -> None: ...

    def open_ingest(self, descriptor: Descriptor) -> Ingest: ...

    def commit(self, ingest: Ingest) -> None: ...

    def delete(self, digest: Digest) -> bool: ...

    def walk(self) -> Iterator[Digest]: ...

    def verify(self, digest: Digest) -> None: ...


class LocalStore:
    """A :class:`ContentStore` in a directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.ingests = root / "ingest"
        try:
            self.blobs.mkdir(parents=True, exist_ok=True)
            self.ingests.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise from_os_error(f"open content store {root}", exc) from exc

    def path(self, digest: Digest) -> Path:
        return self.blobs / digest.algorithm / digest.hex

    def has(self, digest: Digest) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: Digest) -> int:
        try:
            return self.path(digest).stat().st_size
        except OSError as exc:
            raise from_os_error(f"stat blob {digest.short}", exc) from exc

    def read(self, digest: Digest, max_size: int) -> bytes:
        try:
            with open(self.path(digest), "rb") as blob:
                data = blob.read(max_size + 1)
        except OSError as exc:
            raise from_os_error(f"read blob {digest.short}", exc) from exc
        if len(data) > max_size:
            raise InvalidArgument(
                f"read blob {digest.short}: larger than the limit of {max_size} bytes"
            )
        return data

    def write_blob(self, descriptor: Descriptor, data: bytes) -> None:
        """Verify ``data`` against ``descriptor`` and commit it (safe to race)."""
        digest = descriptor.digest
        if len(data) != descriptor.size or not digest.matches(data):
            raise VerificationError(
                f"verify blob {digest.short}: got {len(data)} bytes that do not "
                f"match the descriptor ({descriptor.size} bytes)"
            )
        target = self.path(digest)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=self.ingests, prefix=".blob-")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
            fsync_dir(target.parent)
        except OSError as exc:
            raise from_os_error(f"commit blob {digest.short}", exc) from exc

    def open_ingest(self, descriptor: Descriptor) -> Ingest:
        return Ingest(self.ingests / _key(descriptor.digest), descriptor)

    def commit(self, ingest: Ingest) -> None:
        ingest.commit(self.path(ingest.descriptor.digest))

    def delete(self, digest: Digest) -> bool:
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise from_os_error(f"delete blob {digest.short}", exc) from exc
        fsync_dir(self.path(digest).parent)
        return True

    def walk(self) -> Iterator[Digest]:
        for algorithm_dir in sorted(self.blobs.iterdir()):
            for blob in sorted(algorithm_dir.iterdir()):
                try:
                    yield Digest(algorithm_dir.name, blob.name)
                except InvalidArgument:
                    continue

    def verify(self, digest: Digest) -> None:
        hasher = digest.hasher()
        try:
            with open(self.path(digest), "rb") as blob:
                while chunk := blob.read(_CHUNK):
                    hasher.update(chunk)
        except OSError as exc:
            raise from_os_error(f"verify blob {digest.short}", exc) from exc
        if hasher.hexdigest() != digest.hex:
            raise VerificationError(
                f"verify blob {digest.short}: content hashes to "
                f"{digest.algorithm}:{hasher.hexdigest()[:12]}"
            )

    def ingest_keys(self) -> list[str]:
        """Names of the ingest directories present."""
        return sorted(p.name for p in self.ingests.iterdir() if p.is_dir())

    def remove_ingest(self, digest: Digest) -> None:
        """Drop an ingest by digest, whatever state it is in."""
        shutil.rmtree(self.ingests / _key(digest), ignore_errors=True)

    def remove_idle_ingest(self, digest: Digest) -> bool:
        """Drop an ingest that no writer (in any process) holds; True if removed."""
        directory = self.ingests / _key(digest)
        try:
            fd = os.open(directory / "lock", os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        else:
            shutil.rmtree(directory, ignore_errors=True)
            return True
        finally:
            os.close(fd)


def _key(digest: Digest) -> str:
    return f"{digest.algorithm}-{digest.hex}"
