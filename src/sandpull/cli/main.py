"""Entry point of the ``sandpull`` command: one typer app, sub-commands per module."""

from __future__ import annotations

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
    app()


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
