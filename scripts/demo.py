"""``make demo``: pull an image inside a sandbox from a private registry and run it.

Every step is a ``sandpull`` command (or a real tool: docker-registry, skopeo),
printed before it runs like a terminal transcript:

1. a tenant network ``demo-net`` and, inside it, a distribution registry with
   its own config in a temporary directory;
2. a demo image (Debian's static busybox, built here as an OCI layout) copied
   into that registry with ``skopeo copy``;
3. a sandbox on the tenant network; ``pull --sandbox``, ``images --sandbox``,
   ``run --sandbox ... -- echo hello from sandpull`` and ``stats --sandbox``;
4. the same pull from the host store, which cannot reach the private registry;
5. clean-up of everything, also after a failure or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from demo_image import build_layout

SANDPULL = str(Path(sys.executable).with_name("sandpull"))
NETWORK = "demo-net"
SANDBOX = "demo"
PORT = 5000
REPOSITORY = "demo/busybox:latest"


class DemoError(Exception):
    """A step of the demo failed; the message says which."""


def show(argv: Sequence[str]) -> None:
    print(f"\n$ {shlex.join(_short(argv))}", flush=True)


def step(argv: Sequence[str], *, expect_failure: bool = False) -> str:
    """Run one command, echoing it and its output; return its stdout."""
    show(argv)
    done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)
    print(done.stdout, end="", flush=True)
    if expect_failure:
        if done.returncode == 0:
            raise DemoError(f"{argv[1]}: succeeded, want a failure")
        print(f"(failed with exit code {done.returncode}, as it should)")
    elif done.returncode != 0:
        raise DemoError(f"{shlex.join(_short(argv))}: exit code {done.returncode}")
    return done.stdout


def _short(argv: Sequence[str]) -> list[str]:
    return ["sandpull" if a == SANDPULL else a for a in argv]


def registry_config(directory: Path, address: str) -> Path:
    """A docker-registry config: filesystem storage in ``directory``, plain HTTP."""
    config = directory / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {directory / 'storage'}\n"
        f"http:\n  addr: {address}:{PORT}\n  secret: sandpull-demo\n"
    )
    return config


@contextlib.contextmanager
def registry(directory: Path, address: str) -> Iterator[str]:
    """Run docker-registry inside the tenant network; yields ``host:port``."""
    config = registry_config(directory, address)
    argv = [SANDPULL, "network", "exec", NETWORK, "--",
            "docker-registry", "serve", str(config)]  # fmt: skip
    show([*argv, "&"])
    log = (directory / "registry.log").open("wb")
    server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_listening(server, address, directory / "registry.log")
        yield f"{address}:{PORT}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        print(f"\n(stopped the registry at {address}:{PORT})")


def _wait_listening(server: subprocess.Popen[bytes], address: str, log: Path) -> None:
    probe = [SANDPULL, "network", "exec", NETWORK, "--",
             "bash", "-c", f"exec 3<>/dev/tcp/{address}/{PORT}"]  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise DemoError(f"docker-registry exited: {log.read_text()[-800:]}")
        if subprocess.run(probe, capture_output=True, check=False).returncode == 0:
            return
        time.sleep(0.2)
    raise DemoError(f"docker-registry did not listen on {address}:{PORT}")


def cleanup() -> None:
    """Remove the demo's sandbox and network, whatever state they are in."""
    for argv in (
        [SANDPULL, "sandbox", "rm", SANDBOX],
        [SANDPULL, "network", "rm", NETWORK],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            print(f"$ {shlex.join(_short(argv))}")


def run_demo(work: Path) -> None:
    network = json.loads(step([SANDPULL, "network", "create", NETWORK]))
    address = str(network["gateway"])
    layout = work / "oci"
    digest = build_layout(layout)
    print(f"\n(built the demo image as an OCI layout in {layout}: {digest})")
    with registry(work, address) as host:
        ref = f"{host}/{REPOSITORY}"
        step([SANDPULL, "network", "exec", NETWORK, "--", "skopeo", "copy", "-q",
              "--dest-tls-verify=false",
              f"oci:{layout}:latest", f"docker://{ref}"])  # fmt: skip
        config = work / "registries.toml"
        config.write_text(f'[[registry]]\nlocation = "{host}"\ninsecure = true\n')
        step([SANDPULL, "sandbox", "create", SANDBOX, "--network", f"tenant:{NETWORK}",
              "--memory", "256M", "--storage", "256M",
              "--registries-config", str(config)])  # fmt: skip
        step([SANDPULL, "pull", "--sandbox", SANDBOX, ref])
        step([SANDPULL, "images", "--sandbox", SANDBOX])
        step([SANDPULL, "run", "--sandbox", SANDBOX, "--rm", ref,
              "--", "echo", "hello from sandpull"])  # fmt: skip
        step([SANDPULL, "stats", "--sandbox", SANDBOX])
        print("\n(the host's network does not lead to the tenant's registry:)")
        step([SANDPULL, "pull", "--root", str(work / "host-store"),
              "--config", str(config), ref], expect_failure=True)  # fmt: skip
        step([SANDPULL, "sandbox", "rm", SANDBOX])
    step([SANDPULL, "network", "rm", NETWORK])


def main() -> int:
    cleanup()  # a demo interrupted earlier may have left its objects
    with tempfile.TemporaryDirectory(prefix="sandpull-demo-") as tmp:
        try:
            run_demo(Path(tmp))
        except (DemoError, KeyboardInterrupt) as exc:
            print(f"\ndemo failed: {exc or 'interrupted'}", file=sys.stderr)
            cleanup()
            return 1
        except BaseException:
            cleanup()
            raise
    print("\ndemo done: pulled and ran inside the sandbox, left nothing behind")
    return 0


if __name__ == "__main__":
    sys.exit(main())
