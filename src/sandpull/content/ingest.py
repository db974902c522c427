"""A resumable, verified download of one blob into ``<root>/ingest/<key>/``.

The directory holds ``data`` (the bytes so far) and ``ref.json`` (the expected
descriptor). Re-opening an ingest whose ``ref.json`` names the same descriptor
re-hashes ``data`` and resumes at its end; anything else starts over. Writers of
one ingest are serialised across processes by an ``flock`` on ``lock``.

Readers in other threads (:class:`sandpull.content.TailReader`) follow the data
as it grows: :meth:`Ingest.wait` blocks until more bytes are written or the
ingest is finished or failed.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from sandpull.content.fsync import fsync_dir, fsync_file
from sandpull.errors import (
    FailedPrecondition,
    SandpullError,
    VerificationError,
    from_os_error,
)
from sandpull.oci import Descriptor

_READ_CHUNK = 1 << 20


class Ingest:
    """Writes one blob, hashing as it goes; verified by :meth:`finish`.

    Not thread-safe for writing: one task writes, any number of threads may
    :meth:`wait` for data. Always :meth:`close` (or use ``with``).
    """

    def __init__(self, directory: Path, descriptor: Descriptor) -> None:
        self.directory = directory
        self.descriptor = descriptor
        self.data_path = directory / "data"
        self._hasher = descriptor.digest.hasher()
        self._offset = 0
        self._state = threading.Condition()
        self._finished = False
        self._error: SandpullError | None = None
        self._lock_fd = -1
        self._file: BinaryIO | None = None
        try:
            self._open()
        except OSError as exc:
            self.close()
            raise from_os_error(f"open ingest {descriptor.digest.short}", exc) from exc

    @property
    def offset(self) -> int:
        """Bytes written so far (and hashed); where a resumed download starts."""
        return self._offset

    @property
    def finished(self) -> bool:
        return self._finished

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``; refuse to grow past the descriptor's size."""
        if self._file is None or self._finished:
            raise FailedPrecondition(f"write ingest {self._name}: not open")
        if self._offset + len(chunk) > self.descriptor.size:
            raise VerificationError(
                f"verify blob {self._name}: more than {self.descriptor.size} bytes"
            )
        try:
            self._file.write(chunk)
            self._file.flush()
        except OSError as exc:
            raise from_os_error(f"write ingest {self._name}", exc) from exc
        self._hasher.update(chunk)
        with self._state:
            self._offset += len(chunk)
            self._state.notify_all()

    def finish(self) -> None:
        """Check size and digest; readers then see end of data.

        The data is not flushed here: a layer's ingest is usually read once and
        removed, and a resumed download re-hashes what survived a crash. Only
        :meth:`commit` makes it durable.
        """
        if self._offset != self.descriptor.size:
            raise VerificationError(
                f"verify blob {self._name}: got {self._offset} bytes, "
                f"want {self.descriptor.size}"
            )
        if self._hasher.hexdigest() != self.descriptor.digest.hex:
            raise VerificationError(
                f"verify blob {self._name}: digest {self.descriptor.digest.algorithm}:"
                f"{self._hasher.hexdigest()[:12]} does not match"
            )
        with self._state:
            self._finished = True
            self._state.notify_all()

    def fail(self, error: SandpullError) -> None:
        """Wake every reader with ``error``; the data stays for a later resume."""
        with self._state:
            if self._error is None and not self._finished:
                self._error = error
            self._state.notify_all()

    def wait(self, position: int, stopped: Callable[[], bool] = lambda: False) -> int:
        """Block until more than ``position`` bytes exist; 0 more means the end.

        Returns how many bytes exist. Raises the error given to :meth:`fail`, or
        :class:`FailedPrecondition` once ``stopped()`` is true after a :meth:`wake`.
        """
        with self._state:
            while True:
                if self._offset > position or self._finished:
                    return self._offset
                if self._error is not None:
                    raise self._error
                if stopped():
                    raise FailedPrecondition(f"read ingest {self._name}: stopped")
                self._state.wait()

    def wake(self) -> None:
        """Make every waiting reader re-check its ``stopped`` condition."""
        with self._state:
            self._state.notify_all()

    def commit(self, target: Path) -> None:
        """Move the finished data to ``target`` atomically and drop the ingest."""
        if not self._finished:
            raise FailedPrecondition(f"commit blob {self._name}: not verified")
        try:
            fsync_file(self.data_path)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.data_path, target)
            fsync_dir(target.parent)
        except OSError as exc:
            raise from_os_error(f"commit blob {self._name}", exc) from exc
        self.remove()

    def remove(self) -> None:
        """Close and delete the ingest directory (data included)."""
        self.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
        self.fail(FailedPrecondition(f"read ingest {self._name}: closed"))

    def __enter__(self) -> Ingest:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def _name(self) -> str:
        return self.descriptor.digest.short

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock()
        ref_path = self.directory / "ref.json"
        if self._ref_matches(ref_path):
            self._rehash()
        else:
            # Not flushed: an ingest whose ref.json a crash lost starts over.
            self.data_path.unlink(missing_ok=True)
            ref_path.write_text(json.dumps(self.descriptor.to_json()))
        self._file = open(self.data_path, "ab")  # noqa: SIM115 - kept open to write

    def _lock(self) -> None:
        self._lock_fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise FailedPrecondition(
                f"open ingest {self._name}: in use by another process"
            ) from exc

    def _ref_matches(self, ref_path: Path) -> bool:
        try:
            recorded = Descriptor.from_json(json.loads(ref_path.read_text()))
        except (OSError, ValueError, SandpullError):
            return False
        return (recorded.digest, recorded.size) == (
            self.descriptor.digest,
            self.descriptor.size,
        )

    def _rehash(self) -> None:
        # The data may be longer than the blob after a bad earlier run; keep
        # only what can still be right.
        if not self.data_path.exists():
            return
        if self.data_path.stat().st_size > self.descriptor.size:
            self.data_path.unlink()
            return
        with open(self.data_path, "rb") as data:
            while chunk := data.read(_READ_CHUNK):
                self._hasher.update(chunk)
                self._offset += len(chunk)
