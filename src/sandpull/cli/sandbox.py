"""``sandpull sandbox`` and ``sandpull network``: the ``ns`` sandbox backend."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from sandpull.cli.main import app
from sandpull.cli.output import echo_json, run_async
from sandpull.errors import SandpullError
from sandpull.sandbox.spec import (
    DEFAULT_STORAGE,
    TENANT_SUBNET,
    Limits,
    NetworkChoice,
    NetworkSpec,
    SandboxSpec,
    parse_size,
    parse_subnet,
)

if TYPE_CHECKING:
    from sandpull.sandbox import NetworkManager, SandboxManager

sandbox_app = typer.Typer(help="Create, list, inspect and remove ns sandboxes.")
network_app = typer.Typer(help="Tenant networks that sandboxes can join.")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(network_app, name="network")

_T = TypeVar("_T")


def _sandboxes() -> SandboxManager:
    # Imported here: netlink and namespace code is slow to load and most
    # commands never need it.
    from sandpull.sandbox import SandboxManager

    return SandboxManager()


def _networks() -> NetworkManager:
    from sandpull.sandbox import NetworkManager
    from sandpull.sandbox.state import default_state_dir

    return NetworkManager(default_state_dir())


@sandbox_app.command("create")
def sandbox_create(
    name: str,
    network: Annotated[str, typer.Option(help="bridge, none or tenant:NET")] = "bridge",
    memory: Annotated[str | None, typer.Option(help="memory limit, e.g. 512M")] = None,
    cpus: Annotated[float | None, typer.Option(help="cpu limit, e.g. 1.5")] = None,
    pids: Annotated[int | None, typer.Option(help="most processes at once")] = None,
    storage: Annotated[str | None, typer.Option(help="private disk size")] = None,
    registries_config: Annotated[
        Path | None, typer.Option(help="registries.toml for the agent")
    ] = None,
    certs_dir: Annotated[
        Path | None, typer.Option(help="per-registry CA certificates for the agent")
    ] = None,
) -> None:
    """Create a sandbox and start its agent."""

    async def create() -> dict[str, object]:
        spec = SandboxSpec(
            name,
            NetworkChoice.parse(network),
            Limits(parse_size(memory) if memory else None, cpus, pids),
            parse_size(storage) if storage else DEFAULT_STORAGE,
            registries_config,
            certs_dir,
        )
        return (await _sandboxes().create(spec)).to_dict()

    echo_json(run_async(create))


@sandbox_app.command("list")
def sandbox_list(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List sandboxes and whether their agents are alive."""
    try:
        sandboxes = [s.to_dict() for s in _sandboxes().list()]
    except SandpullError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        echo_json(sandboxes)
        return
    from rich.table import Table

    from sandpull.cli.tables import print_table

    table = Table("NAME", "ALIVE", "NETWORK", "ADDRESS", "AGENT PID")
    for s in sandboxes:
        row = (s["name"], "yes" if s["alive"] else "no", s["network"], s["address"])
        table.add_row(*(str(v or "-") for v in (*row, s["agent_pid"])))
    print_table(table)


@sandbox_app.command("inspect")
def sandbox_inspect(name: str) -> None:
    """Show everything known about one sandbox, as JSON."""

    async def inspect() -> dict[str, object]:
        return _sandboxes().get(name).to_dict()

    echo_json(run_async(inspect))


@sandbox_app.command("rm")
def sandbox_rm(name: str) -> None:
    """Stop a sandbox and remove everything it made."""
    run_async(lambda: _sandboxes().remove(name))


@network_app.command("create")
def network_create(
    name: str,
    subnet: Annotated[str, typer.Option(help="private IPv4 subnet")] = str(
        TENANT_SUBNET
    ),
) -> None:
    """Create a tenant network: a bridge in its own namespace, no route to the host."""

    async def create() -> dict[str, object]:
        spec = NetworkSpec(name, parse_subnet(subnet))
        return (await _networks().create(spec)).to_dict()

    echo_json(run_async(create))


@network_app.command("list")
def network_list(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List tenant networks."""
    networks = [n.to_dict() for n in _networks().list()]
    if as_json:
        echo_json(networks)
        return
    from rich.table import Table

    from sandpull.cli.tables import print_table

    table = Table("NAME", "SUBNET", "GATEWAY", "SANDBOXES")
    for n in networks:
        table.add_row(*(str(n[k]) for k in ("name", "subnet", "gateway", "sandboxes")))
    print_table(table)


@network_app.command("rm")
def network_rm(name: str) -> None:
    """Remove a tenant network that no sandbox uses."""
    run_async(lambda: _networks().remove(name))


@network_app.command(
    "exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def network_exec(ctx: typer.Context, name: str) -> None:
    """Run a command inside a tenant network: 'network exec NET -- CMD...'."""
    if not ctx.args:
        typer.echo("error: network exec: want a command after --", err=True)
        raise typer.Exit(2)

    async def argv() -> list[str]:
        return _networks().get(name).exec_argv(ctx.args)

    full = run_async(argv)
    sys.stdout.flush()
    os.execvp(full[0], full)
