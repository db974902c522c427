"""``sandpull agent serve``: run the in-sandbox agent on a unix socket.

Also ``sandpull agent health`` and ``sandpull agent stats`` to ask a running agent.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from sandpull.cli.main import app

agent_app = typer.Typer(help="The in-sandbox agent.", no_args_is_help=True)
app.add_typer(agent_app, name="agent")

SocketOption = Annotated[Path, typer.Option("--socket", help="agent ttrpc socket")]


@agent_app.command("serve")
def serve_command(
    root: Annotated[Path, typer.Option("--root", help="the agent's image store")],
    socket: SocketOption,
    config: Annotated[
        Path | None, typer.Option("--config", help="registries.toml")
    ] = None,
    certs_dir: Annotated[
        Path | None, typer.Option(help="per-registry CA certificates")
    ] = None,
) -> None:
    """Serve the agent API until SIGTERM or SIGINT."""
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    root.mkdir(parents=True, exist_ok=True)
    asyncio.run(_serve(root, socket, config, certs_dir))


@agent_app.command("health")
def health_command(socket: SocketOption) -> None:
    """Print the agent's health and version."""
    from sandpull.agent import AgentClient

    async def ask() -> str:
        async with AgentClient(str(socket), timeout=10) as client:
            health = await client.health()
            version = await client.version()
        status = "serving" if health.status == 1 else "not serving"
        return f"{status} {version.agent_version} api {version.api_version}"

    typer.echo(asyncio.run(ask()))


@agent_app.command("stats")
def stats_command(socket: SocketOption) -> None:
    """Print bytes pulled per registry and image."""
    from sandpull.agent import AgentClient

    async def ask() -> list[str]:
        async with AgentClient(str(socket), timeout=10) as client:
            stats = await client.pull_stats()
        lines = [f"{r.registry} {r.bytes}" for r in stats.registries]
        lines += [f"{i.image} {i.bytes}" for i in stats.images]
        return [*lines, f"total {stats.total_bytes}"]

    for line in asyncio.run(ask()):
        typer.echo(line)


async def _serve(
    root: Path, socket: Path, config: Path | None, certs_dir: Path | None
) -> None:
    from sandpull.agent import PullAccounting, serve
    from sandpull.agent.store import ServiceImageStore
    from sandpull.registry.config import RegistriesConfig

    accounting = PullAccounting()
    registries = RegistriesConfig.load(config) if config else None
    store = ServiceImageStore(
        root, accounting, registry_config=registries, certs_dir=certs_dir
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await serve(store, accounting, socket, stop)
    finally:
        store.close()
