"""``--sandbox NAME``: pull, list, run and count through a sandbox's agent.

``sandpull pull --sandbox NAME`` and ``sandpull images --sandbox NAME`` route here
from :mod:`sandpull.cli.images`; ``sandpull run`` and ``sandpull stats`` live here.
Every request goes over the sandbox's agent socket, so the image is fetched from
the sandbox's network into the sandbox's disk and never touches the host store.

``run`` exits with the container's exit code; when sandpull itself fails it
prints one ``error: ...`` line and exits 125, a code a container rarely uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from sandpull.cli.main import app
from sandpull.cli.output import echo_json, human_size, log_to_stderr, run_async
from sandpull.errors import FailedPrecondition, SandpullError
from sandpull.oci import Platform, Reference

if TYPE_CHECKING:
    from sandpull.agent import AgentClient
    from sandpull.api import agent_pb2 as pb

# The agent's protobuf messages are imported inside the functions that build
# them: registering these commands must not cost a host pull that import.

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Exit code of ``run`` when sandpull, not the container, failed.
RUN_FAILED = 125

_FORWARDED = (signal.SIGINT, signal.SIGTERM)
#: Seconds between two reads of a running container's logs.
LOG_POLL = 0.1
#: A pull may take long; other calls answer at once.
PULL_TIMEOUT = 3600.0
CALL_TIMEOUT = 60.0

SandboxOption = Annotated[
    str, typer.Option("--sandbox", help="the sandbox whose agent does the work")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]


@dataclass(frozen=True)
class SandboxPull:
    """What ``pull --sandbox`` asks of the agent."""

    sandbox: str
    reference: str
    platform: str | None = None
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class SandboxPulled:
    """The agent's answer, with the time the host saw the pull take."""

    sandbox: str
    reference: Reference
    image_id: str
    manifest_digest: str
    repo_digest: str
    bytes_fetched: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "sandbox": self.sandbox,
            "reference": str(self.reference),
            "image_id": self.image_id,
            "manifest_digest": self.manifest_digest,
            "repo_digest": self.repo_digest,
            "bytes_fetched": self.bytes_fetched,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class RunRequest:
    sandbox: str
    reference: str
    args: tuple[str, ...] = ()
    remove: bool = False
    entrypoint: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    workdir: str = ""
    user: str = ""


# --- routing helpers: async, no output ---------------------------------------------


def agent_for(sandbox: str, timeout: float = CALL_TIMEOUT) -> AgentClient:
    """A client of ``sandbox``'s agent; NotFound or FailedPrecondition if unusable."""
    from sandpull.agent import AgentClient
    from sandpull.sandbox import SandboxManager

    found = SandboxManager().get(sandbox)
    if not found.alive():
        raise FailedPrecondition(f"reach agent of sandbox {sandbox}: it is not running")
    return AgentClient(str(found.agent_socket), timeout=timeout)


async def pull(request: SandboxPull) -> SandboxPulled:
    """PullImage in the sandbox; credentials go to that sandbox's agent only."""
    ref = Reference.parse(request.reference)
    from sandpull.api import agent_pb2 as pb

    platform = _platform(request.platform)
    auth = None
    if request.username is not None:
        auth = pb.AuthConfig(
            username=request.username,
            password=request.password or "",
            server_address=ref.registry,
        )
    started = time.monotonic()
    async with agent_for(request.sandbox, PULL_TIMEOUT) as agent:
        answer = await agent.pull_image(str(ref), auth, platform)
    pulled = SandboxPulled(
        request.sandbox, ref, answer.image_id, answer.manifest_digest,
        answer.repo_digest, answer.bytes_fetched, time.monotonic() - started,
    )  # fmt: skip
    log.info(
        "pulled %s@%s in %.1fs, %.1f MB fetched (sandbox %s)",
        ref, pulled.manifest_digest, pulled.seconds, pulled.bytes_fetched / 1e6,
        request.sandbox,
    )  # fmt: skip
    return pulled


async def list_images(sandbox: str) -> list[pb.Image]:
    async with agent_for(sandbox) as agent:
        return list((await agent.list_images()).images)


async def pull_stats(sandbox: str) -> pb.PullStatsResponse:
    async with agent_for(sandbox) as agent:
        return await agent.pull_stats()


async def run_container(
    request: RunRequest, stdout: IO[bytes], stderr: IO[bytes]
) -> int:
    """Create (pulling if needed), start and wait; copy its output; its exit code."""
    container_id = f"run-{uuid.uuid4().hex[:12]}"
    async with agent_for(request.sandbox, PULL_TIMEOUT) as agent:
        reference = str(Reference.parse(request.reference))
        await agent.create_container(
            container_id, reference, command=request.entrypoint, args=request.args,
            env=request.env, workdir=request.workdir, user=request.user,
        )  # fmt: skip
        try:
            await agent.start_container(container_id)
            with _forward_signals(agent, container_id):
                return await _follow(agent, container_id, stdout, stderr)
        finally:
            if request.remove:
                await agent.remove_container(container_id, force=True)


@contextlib.contextmanager
def _forward_signals(agent: AgentClient, container_id: str) -> Iterator[None]:
    """Pass SIGINT and SIGTERM on to the container, as ``docker run`` does.

    The run goes on until the container exits. A process that ignores the
    signal (a shell as pid 1 without a trap does) gets SIGKILL at the second.
    """
    loop = asyncio.get_running_loop()
    sent: list[asyncio.Task[None]] = []

    def forward(signum: int) -> None:
        signal_to_send = signal.SIGKILL if sent else signum
        sent.append(loop.create_task(_send(agent, container_id, signal_to_send)))

    for signum in _FORWARDED:
        loop.add_signal_handler(signum, forward, signum)
    try:
        yield
    finally:
        for signum in _FORWARDED:
            loop.remove_signal_handler(signum)


async def _send(agent: AgentClient, container_id: str, signum: int) -> None:
    try:
        await agent.signal_container(container_id, signum)
    except SandpullError as exc:
        log.debug("signal container %s: %s", container_id, exc)


async def _follow(
    agent: AgentClient, container_id: str, stdout: IO[bytes], stderr: IO[bytes]
) -> int:
    """Copy both logs until the process has exited and both are read to the end."""
    from sandpull.api import agent_pb2 as pb

    waiting = asyncio.ensure_future(agent.wait_container(container_id))
    offsets = {pb.STDOUT: 0, pb.STDERR: 0}
    sinks = {pb.STDOUT: stdout, pb.STDERR: stderr}
    try:
        while True:
            exited = waiting.done()
            at_end = True
            for stream, sink in sinks.items():
                offset = offsets[stream]
                chunk = await agent.container_logs(container_id, stream, offset)
                sink.write(chunk.data)
                sink.flush()
                offsets[stream] = chunk.next_offset
                at_end = at_end and chunk.eof
            if exited and at_end:
                return (await waiting).exit_status
            if not exited:
                await asyncio.wait([waiting], timeout=LOG_POLL)
    finally:
        waiting.cancel()


def _platform(text: str | None) -> pb.Platform | None:
    if text is None:
        return None
    from sandpull.api import agent_pb2 as pb

    platform = Platform.parse(text)
    return pb.Platform(
        os=platform.os, architecture=platform.architecture, variant=platform.variant
    )


# --- commands ----------------------------------------------------------------------


def pull_command(request: SandboxPull, as_json: bool) -> None:
    """``sandpull pull --sandbox``: same output as a host pull."""
    log_to_stderr()
    pulled = run_async(lambda: pull(request))
    if as_json:
        echo_json(pulled.to_json())
    else:
        typer.echo(f"{pulled.reference} {pulled.image_id}")


def images_command(sandbox: str, as_json: bool) -> None:
    """``sandpull images --sandbox``: the images in the sandbox's own store."""
    images = run_async(lambda: list_images(sandbox))
    if as_json:
        echo_json([_image_json(image) for image in images])
        return
    from rich.table import Table

    from sandpull.cli.tables import print_table

    table = Table("NAME", "IMAGE ID", "PLATFORM", "SIZE", box=None)
    for image in images:
        row = _image_json(image)
        for name in row["repo_tags"] or ["<none>"]:
            table.add_row(
                name, row["id"][7:19], row["platform"], human_size(image.size)
            )
    print_table(table)


@app.command(
    "run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def run_command(
    ctx: typer.Context,
    reference: str,
    sandbox: SandboxOption,
    remove: Annotated[
        bool, typer.Option("--rm", help="remove the container when it exits")
    ] = False,
    entrypoint: Annotated[
        str | None, typer.Option(help="run this instead of the image's entrypoint")
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", "-e", help="KEY=VALUE added to the image's env"),
    ] = None,
    workdir: Annotated[
        str | None, typer.Option("--workdir", "-w", help="working directory")
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="user[:group], name or id")
    ] = None,
) -> None:
    """Run a container from REF in a sandbox: 'run --sandbox S REF -- CMD ...'.

    Pulls REF into the sandbox first if it is missing, prints the container's
    output and exits with its exit code. CMD replaces the image's Cmd; the
    options replace its entrypoint, working directory and user, and add to its
    environment, as 'docker run' does.
    """
    request = RunRequest(
        sandbox, reference, tuple(ctx.args), remove,
        entrypoint=(entrypoint,) if entrypoint else (),
        env=tuple(env or ()), workdir=workdir or "", user=user or "",
    )  # fmt: skip
    code = run_async(
        lambda: run_container(request, sys.stdout.buffer, sys.stderr.buffer),
        failure_code=RUN_FAILED,
    )
    raise typer.Exit(code)


@app.command("stats")
def stats_command(sandbox: SandboxOption, as_json: JsonOption = False) -> None:
    """Bytes a sandbox's agent fetched from registries, per registry and image."""
    stats = run_async(lambda: pull_stats(sandbox))
    data = _stats_json(sandbox, stats)
    if as_json:
        echo_json(data)
        return
    from rich.table import Table

    from sandpull.cli.tables import print_table

    table = Table("REGISTRY", "IMAGE", "BYTES", box=None)
    for row in data["images"]:
        table.add_row(row["registry"], row["image"], str(row["bytes"]))
    for registry, total in data["registries"].items():
        table.add_row(registry, "(all)", str(total))
    table.add_row("(all)", "(all)", str(data["total_bytes"]))
    print_table(table)


def _stats_json(sandbox: str, stats: pb.PullStatsResponse) -> dict[str, Any]:
    return {
        "sandbox": sandbox,
        "registries": {r.registry: r.bytes for r in stats.registries},
        "images": [
            {"registry": i.registry, "image": i.image, "bytes": i.bytes}
            for i in stats.images
        ],
        "total_bytes": stats.total_bytes,
    }


def _image_json(image: pb.Image) -> dict[str, Any]:
    parts = (image.platform.os, image.platform.architecture, image.platform.variant)
    platform = "/".join(p for p in parts if p)
    return {
        "id": image.id,
        "repo_tags": list(image.repo_tags),
        "repo_digests": list(image.repo_digests),
        "manifest_digest": image.manifest_digest,
        "platform": platform,
        "size": image.size,
    }
