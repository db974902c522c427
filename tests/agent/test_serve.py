"""``sandpull agent serve`` as a subprocess over the real image store."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from sandpull import errors
from sandpull.agent import AgentClient

SANDPULL = str(Path(sys.executable).parent / "sandpull")


async def test_served_agent_answers_and_stops_on_sigterm(workdir: Path) -> None:
    socket = workdir / "served.sock"
    process = await asyncio.create_subprocess_exec(
        SANDPULL, "agent", "serve", "--root", str(workdir / "root"),
        "--socket", str(socket), stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await _wait_for(socket)
        async with AgentClient(str(socket), timeout=30) as client:
            health = await client.health()
            status = await client.image_status("registry.test:5000/none:1")
            stats = await client.pull_stats()
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()

    assert health.status == health.SERVING
    assert not status.HasField("image")
    assert stats.total_bytes == 0
    assert process.returncode == 0
    assert not socket.exists() or socket.is_socket()


async def test_client_of_a_missing_agent_is_unavailable(workdir: Path) -> None:
    async with AgentClient(str(workdir / "none.sock")) as client:
        try:
            await client.health()
        except errors.Unavailable as exc:
            assert "connect to ttrpc server" in str(exc)
        else:
            raise AssertionError("health of a missing agent answered")


async def _wait_for(socket: Path) -> None:
    for _ in range(300):
        if socket.exists():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"agent never listened on {socket}")
