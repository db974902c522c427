"""Printing the CLI's tables: to the terminal's width, and never cut when piped.

A name cut to fit 80 columns is useless to ``grep`` or ``awk``; containerd's
and podman's listings print whole names too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table

#: Wide enough for any row sandpull prints; rich pads nothing past the content.
_PIPED_WIDTH = 100_000


def print_table(table: Table) -> None:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=_PIPED_WIDTH)
    console.print(table)
