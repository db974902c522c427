"""Showing a pull's per-layer progress: rich bars on a terminal, plain lines else."""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)

from sandpull.images import LayerProgress


class LayerBars:
    """A context manager whose ``update`` is a pull's progress callback."""

    def __init__(self) -> None:
        self._console = Console(stderr=True)
        self._interactive = self._console.is_terminal
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[phase]}"),
            console=self._console,
            transient=False,
        )
        self._tasks: dict[int, TaskID] = {}

    def __enter__(self) -> LayerBars:
        if self._interactive:
            self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._interactive:
            self._progress.stop()

    def update(self, event: LayerProgress) -> None:
        if not self._interactive:
            if event.phase in ("exists", "done"):
                print(
                    f"layer {event.index + 1} {event.digest.short}: {event.phase}",
                    file=sys.stderr,
                )
            return
        task = self._tasks.get(event.index)
        if task is None:
            description = f"layer {event.index + 1} {event.digest.short}"
            task = self._progress.add_task(description, total=event.total, phase="")
            self._tasks[event.index] = task
        self._progress.update(task, completed=event.done, phase=event.phase)
