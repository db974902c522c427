"""Showing a pull's per-layer progress: rich bars on a terminal, plain lines else."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sandpull.images import LayerProgress

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


class LayerBars:
    """A context manager whose ``update`` is a pull's progress callback.

    rich is imported only when stderr is a terminal: a scripted pull does not
    pay for it.
    """

    def __init__(self) -> None:
        self._progress: Progress | None = _bars() if sys.stderr.isatty() else None
        self._tasks: dict[int, TaskID] = {}

    def __enter__(self) -> LayerBars:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, event: LayerProgress) -> None:
        if self._progress is None:
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


def _bars() -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TransferSpeedColumn,
    )

    console = Console(stderr=True)
    if not console.is_terminal:
        return None
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[phase]}"),
        console=console,
        transient=False,
    )
