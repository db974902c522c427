"""The agent's minimal root: no host file, no other sandbox, yet runc still runs."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from sandpull.sandbox import Sandbox
from sandpull.sandbox.state import DEFAULT_STATE_DIR
from tests.mainjob.conftest import Env

pytestmark = pytest.mark.root


def test_inside_a_sandbox_other_sandboxes_and_host_files_are_invisible(
    env: Env, tmp_path: Path
) -> None:
    canary = tmp_path / "host-canary"
    canary.write_text("host only\n")
    one = env.create("none", prefix="seer")
    other = env.create("none", prefix="seen")
    hidden = [canary, other.directory, other.agent_socket, one.disk_image]
    repo_git = Path(__file__).resolve().parents[2] / ".git"
    hidden += [one.directory / "state.json", repo_git, Path("/etc/shadow")]
    if DEFAULT_STATE_DIR.exists():
        hidden.append(DEFAULT_STATE_DIR)

    seen = {p: (asyncio_exec(one, ["test", "-e", str(p)])) for p in hidden}
    own = asyncio_exec(one, ["test", "-d", str(one.store_root)])

    assert own == 0, "the sandbox's own store must be visible"
    assert [p for p, code in seen.items() if code == 0] == []
    assert canary.exists() and other.directory.exists()


@pytest.mark.parametrize(
    ("path", "writable"),
    [("/usr/bin", False), ("/etc", False), ("/tmp", True)],
    ids=[
        "system dirs are read-only",
        "etc is read-only",
        "tmp is private and writable",
    ],
)
def test_system_binds_are_read_only_and_tmp_is_private(
    env: Env, path: str, writable: bool
) -> None:
    sandbox = env.create("none", prefix="ro")
    probe = f"{path}/sandpull-probe-{os.getpid()}"

    code = asyncio_exec(sandbox, ["touch", probe])

    assert (code == 0) is writable
    assert not os.path.exists(probe)


def asyncio_exec(sandbox: Sandbox, argv: list[str]) -> int:
    return asyncio.run(sandbox.exec(argv)).returncode
