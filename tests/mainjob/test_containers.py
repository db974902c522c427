"""``sandpull run --sandbox``: the image's process settings, exit codes, shared snapshots."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandpull.agent import AgentClient
from sandpull.sandbox import Sandbox
from tests.mainjob.conftest import Env, PrivateRegistry
from tests.mainjob.images import app_image
from tests.support.images import Pushed

pytestmark = [pytest.mark.root, pytest.mark.registry]


@pytest.fixture(scope="module")
def app(private_registry: PrivateRegistry) -> Pushed:
    return private_registry.push("tenant/app", app_image())


@pytest.fixture(scope="module")
def sandbox(env: Env, private_registry: PrivateRegistry) -> Iterator[Sandbox]:
    created = env.create(
        f"tenant:{private_registry.network}", registry=private_registry
    )
    yield created


def test_run_pulls_and_starts_the_entrypoint_with_env_workdir_and_user(
    env: Env, sandbox: Sandbox, app: Pushed
) -> None:
    done = env.cli("run", "--sandbox", sandbox.name, "--rm", app.ref)

    assert done.returncode == 0, done.stderr
    assert done.stdout == ("pwd=/app uid=1000 gid=1001 greeting=hello-from-the-image\n")


@pytest.mark.parametrize(
    ("options", "want"),
    [
        (
            ["-e", "GREETING=from-the-cli"],
            "pwd=/app uid=1000 gid=1001 greeting=from-the-cli",
        ),
        (["-w", "/tmp"], "pwd=/tmp uid=1000 gid=1001 greeting=hello-from-the-image"),
        (["-u", "0:0"], "pwd=/app uid=0 gid=0 greeting=hello-from-the-image"),
        (["--entrypoint", "/bin/echo"], "--"),
    ],
    ids=[
        "--env overrides one variable of the image's env",
        "--workdir replaces the image's working dir",
        "--user replaces the image's user",
        "--entrypoint replaces the image's entrypoint",
    ],
)
def test_run_options_override_the_image_config(
    env: Env, sandbox: Sandbox, app: Pushed, options: list[str], want: str
) -> None:
    done = env.cli("run", "--sandbox", sandbox.name, "--rm", *options, app.ref,
                   "--", "--")  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == want


@pytest.mark.parametrize(
    ("command", "code", "stdout", "stderr"),
    [
        ("exit 0", 0, "", ""),
        ("echo out; echo err >&2; exit 3", 3, "out\n", "err\n"),
        ("exit 42", 42, "", ""),
        ("exit 255", 255, "", ""),
    ],
    ids=[
        "exit code 0 passes through",
        "exit code 3 passes through with both output streams",
        "exit code 42 passes through",
        "exit code 255 passes through",
    ],
)
def test_exit_codes_and_output_pass_through(
    env: Env, sandbox: Sandbox, app: Pushed, command: str, code: int, stdout: str,
    stderr: str,
) -> None:  # fmt: skip
    done = env.cli("run", "--sandbox", sandbox.name, "--rm", app.ref,
                   "--", "sh", "-c", command)  # fmt: skip

    assert done.returncode == code, done.stderr
    assert done.stdout.splitlines(keepends=True)[1:] == stdout.splitlines(True)
    assert done.stderr == stderr


def test_run_with_rm_leaves_no_container_and_without_keeps_one(
    env: Env, sandbox: Sandbox, app: Pushed
) -> None:
    before = set(asyncio.run(container_ids(sandbox)))
    env.cli("run", "--sandbox", sandbox.name, "--rm", app.ref, "--", "true")
    env.cli("run", "--sandbox", sandbox.name, app.ref, "--", "true")

    added = set(asyncio.run(container_ids(sandbox))) - before

    assert len(added) == 1
    asyncio.run(remove_containers(sandbox, added))


def test_two_containers_of_one_image_share_its_snapshots(
    sandbox: Sandbox, app: Pushed
) -> None:
    async def lowers() -> list[str]:
        async with AgentClient(str(sandbox.agent_socket), timeout=60) as agent:
            for name in ("share-1", "share-2"):
                await agent.create_container(name, app.ref, args=["sleep", "30"])
            try:
                mounts = await sandbox.exec(["cat", "/proc/self/mountinfo"])
            finally:
                for name in ("share-1", "share-2"):
                    await agent.remove_container(name, force=True)
        return [_lowerdir(line) for line in mounts.stdout.decode().splitlines()
                if "/containers/share-" in line.split()[4]]  # fmt: skip

    found = asyncio.run(lowers())

    assert len(found) == 2
    assert found[0] == found[1]
    assert len(found[0].split(":")) == len(app_image().layers)


async def container_ids(sandbox: Sandbox) -> list[str]:
    async with AgentClient(str(sandbox.agent_socket), timeout=30) as agent:
        return [c.id for c in (await agent.list_containers()).containers]


async def remove_containers(sandbox: Sandbox, ids: set[str]) -> None:
    async with AgentClient(str(sandbox.agent_socket), timeout=30) as agent:
        for container_id in ids:
            await agent.remove_container(container_id, force=True)


def _lowerdir(mountinfo_line: str) -> str:
    options = mountinfo_line.split(" - ", 1)[1].split()[2]
    for option in options.split(","):
        if option.startswith("lowerdir="):
            return option.removeprefix("lowerdir=")
    return ""


def test_removing_a_sandbox_with_a_live_container_leaves_no_cgroup(
    env: Env, private_registry: PrivateRegistry, app: Pushed
) -> None:
    doomed = env.create(f"tenant:{private_registry.network}", registry=private_registry)

    async def start() -> None:
        async with AgentClient(str(doomed.agent_socket), timeout=60) as agent:
            await agent.create_container("left-running", app.ref, args=["sleep", "300"])
            await agent.start_container("left-running")

    asyncio.run(start())
    assert _cgroup_dirs_named("left-running"), "runc made no cgroup for it"
    asyncio.run(env.manager.remove(doomed.name))

    assert _cgroup_dirs_named("left-running") == []


def _cgroup_dirs_named(name: str) -> list[str]:
    return [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/**/{name}") if p.is_dir()]
