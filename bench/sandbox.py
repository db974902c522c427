"""What a pull inside an ``ns`` sandbox needs: a tenant network with a registry in it.

A sandbox reaches no address of the host, so the benchmark runs a second
registry, over the same storage as the first, inside a tenant network made for
the session (``sandpull network create``, ``network exec``), and gives the
sandbox's agent a registries config that marks it plain HTTP. Sandboxes are made
per run (``sandpull sandbox create --network tenant:NET``), under a state
directory of the benchmark's own.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import registry_server

#: The sandbox's private disk: sparse, big enough for ``blob`` and its ingest.
SANDBOX_STORAGE = "12G"


@dataclass(frozen=True)
class Tenant:
    """The session's tenant network and the registry inside it."""

    network: str
    host: str  # address:port of the registry, reachable from the network only
    env: dict[str, str]  # for every ``sandpull`` call: state dir, agent command


def sandpull_json(sandpull: Path, args: list[str], env: dict[str, str]) -> Any:
    """Run ``sandpull ARGS`` and parse its JSON output; a failure names the call."""
    done = subprocess.run([str(sandpull), *args], capture_output=True, text=True,
                          env=env)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"sandpull {' '.join(args[:2])}: {done.stderr.strip()}")
    return json.loads(done.stdout) if done.stdout.strip() else None


@contextmanager
def tenant(sandpull: Path, work: Path, storage: Path) -> Iterator[Tenant]:
    """A tenant network serving the registry ``storage``; removed on exit."""
    state, name = work / "sandbox-state", f"bench{os.getpid() % 100000}"
    state.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SANDPULL_STATE": str(state)}
    network = sandpull_json(sandpull, ["network", "create", name], env)
    try:
        port = registry_server.free_port()
        host = f"{network['gateway']}:{port}"
        root = work / "tenant-registry"
        process = _registry(sandpull, name, root, storage, host, env)
        try:
            env["SANDPULL_AGENT_COMMAND"] = _agent_command(sandpull, host)
            yield Tenant(name, host, env)
        finally:
            process.stop()
    finally:
        sandpull_json(sandpull, ["network", "rm", name], env)


def _registry(
    sandpull: Path, network: str, root: Path, storage: Path, host: str,
    env: dict[str, str],
) -> registry_server._Process:  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    config = registry_server._config_yaml(0, storage, "", "").replace(
        "addr: 127.0.0.1:0", f"addr: {host}"
    )
    (root / "config.yml").write_text(config)
    log = root / "registry.log"
    serve = [registry_server.REGISTRY_BINARY, "serve", str(root / "config.yml")]
    argv = [str(sandpull), "network", "exec", network, "--", *serve]
    with log.open("wb") as out:
        popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    process = registry_server._Process(popen, log)
    _wait_serving(sandpull, network, host, process, env)
    return process


def _wait_serving(
    sandpull: Path, network: str, host: str, process: registry_server._Process,
    env: dict[str, str],
) -> None:  # fmt: skip
    curl = ["curl", "-sSf", "--retry", "50", "--retry-connrefused",
            "--retry-delay", "0", "--max-time", "30", f"http://{host}/v2/"]  # fmt: skip
    probe = [str(sandpull), "network", "exec", network, "--", *curl]
    done = subprocess.run(probe, capture_output=True, text=True, env=env)
    if done.returncode != 0 or process.popen.poll() is not None:
        process.stop()
        raise RuntimeError(f"start registry in tenant network: {done.stderr.strip()}"
                           f" {process.log.read_text()[-500:]}")  # fmt: skip


def _agent_command(sandpull: Path, host: str) -> str:
    """The agent, started with a registries config marking ``host`` plain HTTP.

    The agent sees no host file outside its minimal root, so a shell writes the
    config into the agent's private ``/tmp`` first and then becomes the agent.
    """
    toml = f'[[registry]]\nlocation = "{host}"\ninsecure = true\n'
    script = (
        f"printf %s {shlex.quote(toml)} > /tmp/registries.toml && "
        f'exec {shlex.quote(str(sandpull))} agent serve --root "$0" --socket "$1" '
        "--config /tmp/registries.toml"
    )
    return shlex.join(["sh", "-c", script, "{root}", "{socket}"])


@dataclass(frozen=True)
class Box:
    """One run's sandbox."""

    name: str
    agent_pid: int
    store_root: str


def create(sandpull: Path, tenant: Tenant, name: str) -> Box:
    args = ["sandbox", "create", name, "--network", f"tenant:{tenant.network}",
            "--storage", SANDBOX_STORAGE]  # fmt: skip
    made = sandpull_json(sandpull, args, tenant.env)
    return Box(name, int(made["agent_pid"]), str(made["store_root"]))


def remove(sandpull: Path, tenant: Tenant, name: str) -> None:
    sandpull_json(sandpull, ["sandbox", "rm", name], tenant.env)


def read_in(box: Box, pattern: str) -> bytes:
    """The content of the first file matching ``pattern`` (a shell glob relative
    to the store) as the agent sees it, from inside its mount namespace."""
    script = f'for f in {box.store_root}/{pattern}; do cat "$f"; exit; done; exit 1'
    argv = ["nsenter", "-t", str(box.agent_pid), "-m", "sh", "-c", script]
    done = subprocess.run(argv, capture_output=True)
    return done.stdout if done.returncode == 0 else b""
