"""What every command shares: running its coroutine, errors, JSON, sizes, logs.

A sandpull error ends a command with one ``error: ...`` line on stderr and the
error's gRPC status code as exit code (1 where the code is 0-2); any other
exception is a bug, reported the same way with exit code 1 unless
``SANDPULL_DEBUG`` asks for the traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import typer

from sandpull.errors import SandpullError

_T = TypeVar("_T")


def run_async(
    make: Callable[[], Coroutine[Any, Any, _T]], failure_code: int | None = None
) -> _T:
    """Run the coroutine ``make()`` returns; ``failure_code`` replaces error codes."""
    try:
        return asyncio.run(make())
    except SandpullError as exc:
        fail(exc, failure_code)
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        raise typer.Exit(130) from None
    except Exception as exc:
        if os.environ.get("SANDPULL_DEBUG"):
            raise
        typer.echo(f"error: internal error ({type(exc).__name__}: {exc})", err=True)
        raise typer.Exit(failure_code or 1) from None


def fail(error: SandpullError, failure_code: int | None = None) -> NoReturn:
    """End the command with ``error``'s one line and exit code."""
    typer.echo(f"error: {error}", err=True)
    code = int(error.code) if error.code > 2 else 1
    raise typer.Exit(failure_code or code) from None


def echo_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def human_size(n: int) -> str:
    """``n`` bytes in decimal units, as ``docker images`` shows them."""
    value = float(n)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def log_to_stderr() -> None:
    """Show sandpull's INFO lines (one per finished pull) on stderr."""
    logger = logging.getLogger("sandpull")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
