"""Two ``sandpull pull`` processes on one store, pulling the same image at once.

containerd users expect this to just work: the second waits for the first one's
download and reuses what it committed, so the layers cross the network once.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import SANDPULL
from tests.images.bigimage import OVERHEAD_LIMIT, big_image
from tests.support.images import push_image
from tests.support.registry_server import RegistryServer
from tests.usecases.gate import Gate

pytestmark = [pytest.mark.registry]

WAITING = "waiting for another pull of layer"


@pytest.fixture
def gate(registry_plain: RegistryServer) -> Iterator[Gate]:
    host, port = registry_plain.host.split(":")
    proxy = Gate((host, int(port)))
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def _pull(ref: str, root: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [SANDPULL, "pull", ref, "--json", "--root", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _follow(process: subprocess.Popen[str], lines: list[str], gate: Gate) -> None:
    """Collect stderr; open the gate once this process waits or gives up."""
    assert process.stderr is not None
    for line in process.stderr:
        lines.append(line)
        if WAITING in line:
            gate.open()
    gate.open()


def _bytes(process: subprocess.Popen[str], stderr: list[str]) -> int:
    assert process.stdout is not None
    stdout = process.stdout.read()
    assert process.wait(timeout=120) == 0, "".join(stderr)
    fetched: int = json.loads(stdout)["bytes_fetched"]
    return fetched


def test_a_second_process_waits_for_the_first_and_fetches_no_layer_again(
    tmp_path: Path, registry_plain: RegistryServer, gate: Gate
) -> None:
    image = big_image(layers=2, layer_bytes=2 << 20, seed=42)
    push_image(registry_plain, "usecases/concurrent", "v1", image)
    ref = f"{gate.host}/usecases/concurrent:v1"
    store = tmp_path / "store"

    processes = [_pull(ref, store), _pull(ref, store)]
    stderrs: list[list[str]] = [[], []]
    followers = [
        threading.Thread(target=_follow, args=(p, s, gate))
        for p, s in zip(processes, stderrs, strict=True)
    ]
    for follower in followers:
        follower.start()
    together = [_bytes(p, s) for p, s in zip(processes, stderrs, strict=True)]
    for follower in followers:
        follower.join()

    again = _bytes(_pull(ref, store), [])
    fresh = _bytes(_pull(ref, tmp_path / "fresh"), [])
    # Every layer crossed the network once; the second process read the config
    # before the first one committed it, which costs less than any layer.
    assert fresh + again <= sum(together) < fresh + again + OVERHEAD_LIMIT
    assert again < OVERHEAD_LIMIT
    assert sorted(WAITING in "".join(s) for s in stderrs) == [False, True]
