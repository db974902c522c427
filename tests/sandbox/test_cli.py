"""The ``sandpull sandbox`` and ``sandpull network`` commands, run as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.sandbox.conftest import unique

pytestmark = pytest.mark.root

SANDPULL = str(Path(sys.executable).with_name("sandpull"))

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(state_dir: Path) -> Iterator[Run]:
    if os.geteuid() != 0:
        pytest.skip("sandboxes need root")
    env = {
        **os.environ,
        "SANDPULL_STATE": str(state_dir),
        "SANDPULL_AGENT_COMMAND": "sleep infinity",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [SANDPULL, *args]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)

    yield run
    for kind in ("sandboxes", "networks"):
        for leftover in (state_dir / kind).glob("*"):
            run("sandbox" if kind == "sandboxes" else "network", "rm", leftover.name)


def test_sandbox_commands_create_list_inspect_and_remove(cli: Run) -> None:
    run = cli
    net, name = unique("net"), unique("sb")
    assert run("network", "create", net, "--subnet", "10.89.221.0/24").returncode == 0

    created = run("sandbox", "create", name, "--network", f"tenant:{net}",
                  "--memory", "64M", "--pids", "20", "--storage", "32M")  # fmt: skip
    assert created.returncode == 0, created.stderr
    shown = json.loads(run("sandbox", "inspect", name).stdout)
    listed = json.loads(run("sandbox", "list", "--json").stdout)
    assert (shown["alive"], shown["address"]) == (True, "10.89.221.2/24")
    assert shown["limits"] == {"memory_bytes": 64 << 20, "cpus": None, "pids": 20}
    assert [s["name"] for s in listed] == [name]

    assert run("sandbox", "rm", name).returncode == 0
    assert json.loads(run("sandbox", "list", "--json").stdout) == []
    assert run("network", "rm", net).returncode == 0


def test_network_exec_runs_inside_the_tenant_network(cli: Run) -> None:
    run = cli
    net = unique("net")
    run("network", "create", net, "--subnet", "10.89.222.0/24")
    result = run("network", "exec", net, "--", "cat", "/proc/net/dev")
    assert result.returncode == 0
    assert "br0:" in result.stdout


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (("sandbox", "create", "Bad_Name"), "parse sandbox name 'Bad_Name'", 3),
        (("sandbox", "create", "x", "--network", "host"), "parse network 'host'", 3),
        (("sandbox", "create", "x", "--memory", "lots"), "parse size 'lots'", 3),
        (("sandbox", "rm", "nobody"), "remove sandbox nobody: no such sandbox", 5),
        (("network", "rm", "nobody"), "find network nobody: no such tenant network", 5),
    ],
    ids=[
        "a bad sandbox name is refused",
        "an unknown network mode is refused",
        "an unreadable memory size is refused",
        "removing an unknown sandbox says so",
        "removing an unknown network says so",
    ],
)
def test_bad_input_gets_one_clear_error_line(
    cli: Run, args: tuple[str, ...], message: str, code: int
) -> None:
    result = cli(*args)
    assert result.returncode == code  # the error's gRPC status code
    assert result.stderr.strip().startswith(f"error: {message}")
