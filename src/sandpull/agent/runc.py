"""runc, driven as a command: create, start, kill, delete, version.

Every command uses the agent's own ``--root`` so containers of different agents
never meet, and ``--log`` in JSON so a failure can be reported with runc's own
last error line.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import IO

from sandpull.errors import FailedPrecondition, NotFound, SandpullError

log = logging.getLogger(__name__)

RUNC = "/usr/sbin/runc"
_OUTPUT_LIMIT = 64 * 1024


class Runc:
    def __init__(self, state_dir: Path, binary: str = RUNC) -> None:
        self.state_dir = state_dir
        self.binary = binary

    async def create(
        self, container_id: str, bundle: Path, stdout: IO[bytes], stderr: IO[bytes]
    ) -> int:
        """Create the container with the given stdio (no terminal); returns its pid."""
        pid_file = bundle / "init.pid"
        await self._run(
            "create", container_id, ["--bundle", str(bundle), "--pid-file",
                                     str(pid_file)],
            bundle=bundle, stdout=stdout, stderr=stderr,
        )  # fmt: skip
        return int(pid_file.read_text().strip())

    async def start(self, container_id: str, bundle: Path) -> None:
        await self._run("start", container_id, [], bundle=bundle)

    async def kill(self, container_id: str, bundle: Path, signal: int) -> None:
        await self._run("kill", container_id, [], str(signal), bundle=bundle)

    async def delete(self, container_id: str, bundle: Path, force: bool) -> None:
        await self._run(
            "delete", container_id, ["--force"] if force else [], bundle=bundle
        )

    async def version(self) -> str:
        process = await asyncio.create_subprocess_exec(
            self.binary, "--version", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await process.communicate()
        first = out.decode(errors="replace").splitlines()
        return first[0] if first else "runc"

    async def _run(
        self,
        command: str,
        container_id: str,
        options: list[str],
        *extra: str,
        bundle: Path,
        stdout: IO[bytes] | int = asyncio.subprocess.DEVNULL,
        stderr: IO[bytes] | int = asyncio.subprocess.PIPE,
    ) -> None:
        log_file = bundle / "runc.log"
        argv = [
            self.binary, "--root", str(self.state_dir), "--log", str(log_file),
            "--log-format", "json", command, *options, container_id, *extra,
        ]  # fmt: skip
        log.debug("runc %s %s", command, container_id)
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=stdout, stderr=stderr
        )
        _, err = await process.communicate()
        if process.returncode != 0:
            reason = _last_error(log_file) or (err or b"").decode(errors="replace")
            raise _runc_error(command, container_id, reason.strip())


def _last_error(log_file: Path) -> str:
    try:
        with open(log_file, "rb") as file:
            file.seek(max(0, log_file.stat().st_size - _OUTPUT_LIMIT))
            lines = file.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") == "error":
            return str(entry.get("msg", ""))
    return ""


def _runc_error(command: str, container_id: str, reason: str) -> SandpullError:
    message = f"runc {command} {container_id}: {reason or 'failed'}"
    if "does not exist" in reason or "not exist" in reason:
        return NotFound(message)
    return FailedPrecondition(message)
