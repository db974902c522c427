"""``sandpull run`` interrupted: the signal reaches the container, as with docker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator

import pytest

from sandpull.agent import AgentClient
from sandpull.sandbox import Sandbox
from tests.mainjob.conftest import SANDPULL, Env, PrivateRegistry
from tests.mainjob.images import app_image
from tests.support.images import Pushed

pytestmark = [pytest.mark.root, pytest.mark.registry]

TRAP = 'trap "echo got-signal; exit 42" INT TERM; echo ready; while :; do sleep 1; done'


@pytest.fixture(scope="module")
def app(private_registry: PrivateRegistry) -> Pushed:
    return private_registry.push("usecases/app", app_image())


@pytest.fixture(scope="module")
def sandbox(env: Env, private_registry: PrivateRegistry) -> Iterator[Sandbox]:
    yield env.create(
        f"tenant:{private_registry.network}", registry=private_registry, prefix="sig"
    )


async def _containers(sandbox: Sandbox) -> list[str]:
    async with AgentClient(str(sandbox.agent_socket), timeout=30) as agent:
        return [c.id for c in (await agent.list_containers()).containers]


@pytest.mark.parametrize(
    "signum",
    [
        pytest.param(signal.SIGINT, id="ctrl-c reaches the container and --rm cleans"),
        pytest.param(
            signal.SIGTERM, id="sigterm reaches the container and --rm cleans"
        ),
    ],
)
def test_a_signal_to_run_is_passed_to_the_container(
    env: Env, sandbox: Sandbox, app: Pushed, signum: signal.Signals
) -> None:
    argv = [SANDPULL, "run", "--sandbox", sandbox.name, "--rm", app.ref,
            "--", "sh", "-c", TRAP]  # fmt: skip
    run = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "SANDPULL_STATE": str(env.state_dir)},
    )  # fmt: skip
    assert run.stdout is not None
    while run.stdout.readline() not in ("ready\n", ""):
        continue

    run.send_signal(signum)
    stdout, stderr = run.communicate(timeout=60)

    assert (run.returncode, stdout) == (42, "got-signal\n"), stderr
    assert asyncio.run(_containers(sandbox)) == []
