"""``sandpull pull``, ``images``, ``inspect``, ``rmi``, ``gc``, ``mount``, ``check``.

Every command works on the host store (``--root``, default ``$SANDPULL_ROOT`` or
``/var/lib/sandpull``). Errors print one ``error: ...`` line on stderr and exit
with the error's gRPC status code (3 invalid argument, 5 not found, 7 permission
denied, 8 no space, 14 unavailable, 15 verification failed, 16 unauthenticated,
...); 1 is any other failure, and ``check`` exits 1 when it finds problems.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from sandpull.cli.main import app
from sandpull.cli.output import (
    echo_json,
    fail,
    human_size,
    log_to_stderr,
    run_async,
)
from sandpull.errors import InvalidArgument

if TYPE_CHECKING:
    from sandpull.images import ImageRecord, ImageService, PulledImage

# The image store, the registry client and rich are imported inside the commands
# that use them: ``sandpull run --sandbox`` and ``--help`` start without them.

_T = TypeVar("_T")

RootOption = Annotated[
    Path | None,
    typer.Option("--root", help="image store directory [env SANDPULL_ROOT]"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]
SandboxOption = Annotated[
    str | None, typer.Option("--sandbox", help="work in this sandbox's store instead")
]


@app.command("pull")
def pull_command(
    reference: str,
    platform: Annotated[
        str | None, typer.Option(help="os/arch[/variant], default: this host")
    ] = None,
    root: RootOption = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="registries.toml")
    ] = None,
    certs_dir: Annotated[
        Path | None, typer.Option(help="per-registry CA certificates")
    ] = None,
    username: Annotated[str | None, typer.Option(help="registry user")] = None,
    password_stdin: Annotated[
        bool, typer.Option(help="read the registry password from stdin")
    ] = False,
    progress_timeout: Annotated[
        float | None,
        typer.Option(help="fail after this many seconds without data [default: 60]"),
    ] = None,
    as_json: JsonOption = False,
    sandbox: SandboxOption = None,
) -> None:
    """Pull an image into the store, or with --sandbox into that sandbox's."""
    if sandbox is not None:
        from sandpull.cli import sandboxed

        password = _password(username, password_stdin)
        request = sandboxed.SandboxPull(
            sandbox, reference, platform, username, password
        )
        sandboxed.pull_command(request, as_json)
        return
    from sandpull.cli import store
    from sandpull.cli.progress import LayerBars

    log_to_stderr()
    options = store.PullOptions(
        reference,
        root or store.default_root(),
        platform,
        config,
        certs_dir,
        username,
        _password(username, password_stdin),
        progress_timeout,
    )
    with LayerBars() as bars:
        pulled = run_async(lambda: store.pull(options, bars.update))
    if as_json:
        echo_json(_pulled_json(pulled))
    else:
        typer.echo(f"{pulled.reference} {pulled.image_id}")


@app.command("images")
def images_command(
    root: RootOption = None, as_json: JsonOption = False, sandbox: SandboxOption = None
) -> None:
    """List the images in the store, or with --sandbox in that sandbox's."""
    if sandbox is not None:
        from sandpull.cli import sandboxed

        sandboxed.images_command(sandbox, as_json)
        return
    records = _with_store(root, lambda s: s.list_images())
    if as_json:
        echo_json([_record_json(r) for r in records])
        return
    from rich.table import Table

    from sandpull.cli.tables import print_table

    table = Table("NAME", "IMAGE ID", "PLATFORM", "SIZE", box=None)
    for record in records:
        table.add_row(
            record.name,
            record.image_id.short,
            str(record.platform),
            human_size(record.size),
        )
    print_table(table)


@app.command("inspect")
def inspect_command(reference: str, root: RootOption = None) -> None:
    """Show an image's record, config and snapshot directories as JSON."""

    def inspect(service: ImageService) -> dict[str, Any]:
        record = service.get(reference)
        config = service.config(record)
        return {
            **_record_json(record),
            "diff_ids": [str(d) for d in config.diff_ids],
            "entrypoint": list(config.entrypoint),
            "cmd": list(config.cmd),
            "env": list(config.env),
            "working_dir": config.working_dir,
            "user": config.user,
            "snapshots": [str(p) for p in service.snapshot_dirs(record)],
        }

    echo_json(_with_store(root, inspect))


@app.command("rmi")
def rmi_command(reference: str, root: RootOption = None) -> None:
    """Remove an image's name; 'gc' frees its data."""
    record = _with_store(root, lambda s: s.remove(reference))
    typer.echo(f"removed {record.name}")


@app.command("gc")
def gc_command(root: RootOption = None, as_json: JsonOption = False) -> None:
    """Delete blobs and snapshots that no image uses."""
    report = _with_store(root, lambda s: s.gc())
    if as_json:
        echo_json(vars(report))
    else:
        typer.echo(
            f"removed {report.blobs_removed} blobs and {report.snapshots_removed} "
            f"snapshots, freed {human_size(report.bytes_freed)}"
        )


@app.command("mount")
def mount_command(reference: str, target: Path, root: RootOption = None) -> None:
    """Mount an image read-only (an overlay of its snapshots) on TARGET."""
    _with_store(root, lambda s: s.mount(reference, target))


@app.command("check")
def check_command(root: RootOption = None, as_json: JsonOption = False) -> None:
    """Re-verify every blob and snapshot; exit 1 if anything is wrong."""
    report = _with_store(root, lambda s: s.check())
    if as_json:
        echo_json({**vars(report), "problems": list(report.problems)})
    else:
        for problem in report.problems:
            typer.echo(f"problem: {problem}")
        typer.echo(f"checked {report.blobs} blobs and {report.snapshots} snapshots")
    if not report.clean:
        raise typer.Exit(1)


# --- helpers shared by the commands above --------------------------------------------


def _with_store(root: Path | None, action: Callable[[ImageService], _T]) -> _T:
    from sandpull.cli import store

    async def run() -> _T:
        async with store.open_store(root or store.default_root()) as service:
            return action(service)

    return run_async(run)


def _password(username: str | None, from_stdin: bool) -> str | None:
    if not from_stdin:
        return None
    if username is None:
        fail(InvalidArgument("pull: --password-stdin needs --username"))
    return sys.stdin.readline().rstrip("\r\n")


def _pulled_json(pulled: PulledImage) -> dict[str, Any]:
    return {
        "reference": str(pulled.reference),
        "image_id": str(pulled.image_id),
        "manifest_digest": str(pulled.manifest_digest),
        "repo_digest": pulled.repo_digest,
        "platform": str(pulled.platform),
        "bytes_fetched": pulled.bytes_fetched,
        "seconds": round(pulled.seconds, 3),
        "layers": [str(layer.digest) for layer in pulled.layers],
    }


def _record_json(record: ImageRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "image_id": str(record.image_id),
        "manifest_digest": str(record.manifest_digest),
        "media_type": record.media_type,
        "repo_digest": record.repo_digest,
        "platform": str(record.platform),
        "size": record.size,
        "created": record.created.isoformat(),
    }
