"""Runtime-spec generation from an image config (sandpull.oci.runtime)."""

from __future__ import annotations

import json

import pytest

from sandpull.errors import InvalidArgument
from sandpull.oci import ImageConfig
from sandpull.oci.runtime import ProcessOverrides, User, runtime_spec


def config(**run: object) -> ImageConfig:
    doc = {"os": "linux", "architecture": "amd64", "config": run,
           "rootfs": {"type": "layers", "diff_ids": []}}  # fmt: skip
    return ImageConfig.parse(json.dumps(doc).encode())


IMAGE = config(Entrypoint=["/app"], Cmd=["--serve"], Env=["A=1", "PATH=/x"])


@pytest.mark.parametrize(
    ("overrides", "args"),
    [
        pytest.param(ProcessOverrides(), ["/app", "--serve"],
                     id="no override runs entrypoint plus cmd"),
        pytest.param(ProcessOverrides(args=("--once",)), ["/app", "--once"],
                     id="args replace cmd only"),
        pytest.param(ProcessOverrides(command=("/bin/sh",)), ["/bin/sh"],
                     id="a command replaces entrypoint and drops cmd"),
        pytest.param(ProcessOverrides(command=("/bin/sh",), args=("-c", "x")),
                     ["/bin/sh", "-c", "x"], id="command and args together"),
    ],
)  # fmt: skip
def test_process_args(overrides: ProcessOverrides, args: list[str]) -> None:
    assert runtime_spec(IMAGE, User(), overrides)["process"]["args"] == args


def test_env_overrides_win_by_key_and_home_comes_from_the_user() -> None:
    overrides = ProcessOverrides(env=("A=2", "B=3"))

    env = runtime_spec(IMAGE, User(home="/home/u"), overrides)["process"]["env"]

    assert env == ["A=2", "PATH=/x", "B=3", "HOME=/home/u"]


def test_user_and_workdir() -> None:
    spec = runtime_spec(config(Cmd=["x"], WorkingDir="/srv"), User(5, 6, (7,)))

    assert spec["process"]["user"] == {"uid": 5, "gid": 6, "additionalGids": [7]}
    assert spec["process"]["cwd"] == "/srv"
    assert spec["root"] == {"path": "rootfs", "readonly": False}


def test_container_shares_the_sandbox_network() -> None:
    namespaces = runtime_spec(IMAGE, User())["linux"]["namespaces"]

    assert {"type": "network"} not in namespaces
    assert {"type": "pid"} in namespaces


@pytest.mark.parametrize(
    ("image", "overrides", "message"),
    [
        pytest.param(config(), ProcessOverrides(), "no Entrypoint or Cmd",
                     id="an image with nothing to run needs a command"),
        pytest.param(IMAGE, ProcessOverrides(env=("NOEQUALS",)), "not KEY=VALUE",
                     id="an env entry without equals is refused"),
        pytest.param(IMAGE, ProcessOverrides(workdir="rel"), "not absolute",
                     id="a relative working dir is refused"),
    ],
)  # fmt: skip
def test_bad_input_is_invalid(
    image: ImageConfig, overrides: ProcessOverrides, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        runtime_spec(image, User(), overrides)
