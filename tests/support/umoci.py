"""The reference unpacker: ``skopeo copy`` to an OCI layout, then ``umoci unpack``.

:func:`umoci_unpack` gives the rootfs that umoci makes of an image in a registry
fixture; ``umoci_rootfs`` is a session fixture that does it once per reference.
Credentials go to skopeo through an auth file, never on its command line. umoci runs
as root (not rootless), so owners, devices and capabilities are applied for real.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pytest

_TIMEOUT_SECONDS = 600
_POLICY = {"default": [{"type": "insecureAcceptAnything"}]}


class Source(Protocol):
    """What is needed of a registry fixture (``RegistryServer``)."""

    host: str
    scheme: str
    username: str | None
    password: str | None
    certs_dir: Path | None


def umoci_unpack(server: Source, repo_ref: str, work: Path) -> Path:
    """Unpack ``repo_ref`` (``repo:tag`` or ``repo@digest``) in ``work``; its rootfs."""
    work.mkdir(parents=True, exist_ok=True)
    layout = work / "layout"
    _skopeo_copy(server, repo_ref, layout, work)
    bundle = work / "bundle"
    _run(["umoci", "unpack", "--image", f"{layout}:sandpull", str(bundle)])
    return bundle / "rootfs"


def _skopeo_copy(server: Source, repo_ref: str, layout: Path, work: Path) -> None:
    policy = work / "policy.json"
    policy.write_text(json.dumps(_POLICY))
    command = ["skopeo", "--policy", str(policy), "copy", "--quiet"]
    command += _source_options(server, work)
    command += [f"docker://{server.host}/{repo_ref}", f"oci:{layout}:sandpull"]
    _run(command)


def _source_options(server: Source, work: Path) -> list[str]:
    options: list[str] = []
    if server.scheme == "https" and server.certs_dir is not None:
        options.append(f"--src-cert-dir={server.certs_dir / server.host}")
    else:
        options.append("--src-tls-verify=false")
    if server.username is not None:
        auth_file = work / "auth.json"
        raw = f"{server.username}:{server.password}".encode()
        auths = {server.host: {"auth": base64.b64encode(raw).decode()}}
        auth_file.write_text(json.dumps({"auths": auths}))
        auth_file.chmod(0o600)
        options.append(f"--src-authfile={auth_file}")
    return options


def _run(command: list[str]) -> None:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=_TIMEOUT_SECONDS
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{command[0]} {command[1]}: exit {result.returncode}: "
            f"{result.stderr.strip()[-2000:]}"
        )


UmociRootfs = Callable[[Source, str], Path]


@pytest.fixture(scope="session")
def umoci_rootfs(tmp_path_factory: pytest.TempPathFactory) -> UmociRootfs:
    """``umoci_rootfs(server, repo_ref)``: umoci's rootfs, unpacked once per ref."""
    done: dict[tuple[str, str], Path] = {}

    def unpack(server: Source, repo_ref: str) -> Path:
        key = (server.host, repo_ref)
        if key not in done:
            work = tmp_path_factory.mktemp("umoci")
            done[key] = umoci_unpack(server, repo_ref, work)
        return done[key]

    return unpack
