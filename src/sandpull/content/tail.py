"""A file-like reader that follows an ingest while it is being written."""

from __future__ import annotations

import io

from sandpull.content.ingest import Ingest


class TailReader(io.RawIOBase):
    """Reads an :class:`Ingest`'s data from the start, blocking for more.

    ``read`` returns ``b""`` only once the ingest is finished (verified) and
    every byte was read; it raises the ingest's error if the download failed.
    Meant for a worker thread; it never blocks the event loop.
    """

    def __init__(self, ingest: Ingest) -> None:
        super().__init__()
        self._ingest = ingest
        self._file = open(ingest.data_path, "rb")  # noqa: SIM115 - closed in close()
        self._position = 0
        self._stopped = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        available = self._ingest.wait(self._position, lambda: self._stopped)
        want = min(len(buffer), available - self._position)
        if want <= 0:
            return 0
        data = self._file.read(want)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def stop(self) -> None:
        """Make a blocked or later ``read`` raise instead of waiting (any thread)."""
        self._stopped = True
        self._ingest.wake()

    def close(self) -> None:
        self._file.close()
        super().close()
