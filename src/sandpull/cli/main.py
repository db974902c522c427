"""Entry point of the ``sandpull`` command: one typer app, sub-commands per module."""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

import typer

app = typer.Typer(
    name="sandpull",
    help="Pull container images inside a pod sandbox and run containers from them.",
    no_args_is_help=True,
    add_completion=False,
    # Help texts carry literal brackets such as os/arch[/variant].
    rich_markup_mode=None,
)


def main() -> None:
    _register()
    try:
        app()
    except SystemExit as exc:
        _leave(exc.code)
    _leave(0)


def _leave(code: object) -> NoReturn:
    """Exit now, without tearing the interpreter down module by module.

    Every command has finished its work and closed its store by the time it
    returns; what remains is flushing the output. Skipping the interpreter's
    clean-up saves a short command a good part of its run time.
    """
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1
    os._exit(code or 0)


def _register() -> None:
    # Each module adds its commands to ``app``; imported here so that importing
    # ``sandpull.cli.main`` alone stays cheap.
    import importlib

    for name in ("images", "sandbox", "agent", "sandboxed"):
        try:
            importlib.import_module(f"sandpull.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"sandpull.cli.{name}":
                raise
