"""Pulls through a fault-injecting proxy in front of the real registry.

Each fault either heals (the pull succeeds and its content is verified) or the
pull fails with an error that names the registry, the digest and the fault.
Either way the store is checked afterwards: nothing unverified was committed.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandpull.errors import (
    DeadlineExceeded,
    ResourceExhausted,
    SandpullError,
    Unavailable,
    VerificationError,
)
from sandpull.images import ImageService
from tests.faults import proxy as f
from tests.faults.conftest import OpenStore, StartProxy
from tests.faults.proxy import FaultProxy, Rule
from tests.images.bigimage import big_image
from tests.support.images import Image, Pushed, push_image
from tests.support.registry_server import RegistryServer

pytestmark = [pytest.mark.registry]

LAYER_BYTES = 1 << 20
REPO = "faults/two-layers"


@pytest.fixture(scope="module")
def pushed(registry_plain: RegistryServer) -> tuple[Image, Pushed]:
    image = big_image(2, LAYER_BYTES, seed=41)
    return image, push_image(registry_plain, REPO, "v1", image)


def _blob(image: Image, index: int) -> str:
    return rf"/blobs/{image.layers[index].digest}$"


def _config(image: Image) -> str:
    return rf"/blobs/{image.config_digest}$"


Script = Callable[[Image], list[Rule]]


@dataclass(frozen=True)
class Heals:
    """The pull succeeds; ``resumed`` says a Range request must have been made."""

    resumed: bool = False


@dataclass(frozen=True)
class Fails:
    """The pull fails with ``error``; ``words`` name the fault in the message."""

    error: type[SandpullError]
    words: tuple[str, ...]
    digest: Callable[[Image], str] = lambda image: image.layers[0].digest.hex[:12]


def _layer0(image: Image) -> bytes:
    return image.layers[0].blob


HEALING: list[object] = [
    pytest.param(
        lambda i: [Rule(_blob(i, 0), f.reset_at(LAYER_BYTES // 2), times=1)],
        Heals(resumed=True),
        id="a connection reset in the middle of a layer is resumed with a range",
    ),
    pytest.param(
        lambda i: [Rule(_blob(i, 1), f.reset_at(0), times=2)],
        Heals(),
        id="a connection reset before the first body byte is retried",
    ),
    *(
        pytest.param(
            lambda i, code=code: [Rule(_blob(i, 0), f.status(code), times=2)],
            Heals(),
            id=f"C39 a {code} answered twice for a layer is retried",
        )
        for code in (500, 502, 503)
    ),
    pytest.param(
        lambda i: [Rule("/manifests/", f.status(503), times=1)],
        Heals(),
        id="C39 a 503 for the manifest is retried",
    ),
    pytest.param(
        lambda i: [Rule(_blob(i, 1), f.status(429, retry_after="1"), times=1)],
        Heals(),
        id="C39 a 429 with retry-after for a layer is waited out",
    ),
    pytest.param(
        lambda i: [Rule(_blob(i, 0), f.short_body(LAYER_BYTES // 3), times=1)],
        Heals(resumed=True),
        id="a body shorter than the blob is completed with a range",
    ),
    pytest.param(
        lambda i: [
            Rule(_blob(i, 0), f.reset_at(LAYER_BYTES // 2), times=1),
            Rule(_blob(i, 0), f.ignore_range(_layer0(i)), times=1, range_only=True),
        ],
        Heals(resumed=True),
        id="a range answered with 200 and the whole blob is skipped to the offset",
    ),
    pytest.param(
        lambda i: [
            Rule("/manifests/", f.header("Docker-Content-Digest", "sha256:" + "0" * 64))
        ],
        Heals(),
        id="C31 a lying docker-content-digest on the manifest is ignored",
    ),
    pytest.param(
        lambda i: [
            Rule(_blob(i, 0), f.header("Docker-Content-Digest", "sha256:" + "1" * 64))
        ],
        Heals(),
        id="C31 a lying docker-content-digest on a layer is ignored",
    ),
]

FAILING: list[object] = [
    pytest.param(
        lambda i: [Rule(_blob(i, 0), f.corrupt())],
        Fails(VerificationError, ("does not match",)),
        id="C32 a layer with one wrong byte fails verification",
    ),
    pytest.param(
        lambda i: [Rule(_config(i), f.corrupt())],
        Fails(VerificationError, ("verify",), lambda i: i.config_digest.hex[:12]),
        id="C32 a config with one wrong byte fails verification",
    ),
    pytest.param(
        lambda i: [Rule(_blob(i, 0), f.status(503))],
        Fails(Unavailable, ("server error (503)",)),
        id="C39 a layer answered 503 on every try is unavailable",
    ),
    pytest.param(
        lambda i: [Rule(_blob(i, 0), f.status(429, retry_after="0"))],
        Fails(ResourceExhausted, ("rate limited (429)",)),
        id="C39 a layer answered 429 on every try is rate limited",
    ),
    pytest.param(
        lambda i: [Rule(_blob(i, 0), f.reset_at(1000))],
        Fails(VerificationError, ("ended at byte",)),
        id="a layer whose connection is reset on every try is unavailable",
    ),
    pytest.param(
        lambda i: [Rule(_blob(i, 0), f.short_body(1000))],
        Fails(VerificationError, ("ended at byte",)),
        id="a layer whose body is short on every try fails verification",
    ),
    pytest.param(
        lambda i: [Rule(_blob(i, 0), f.trickle(1))],
        Fails(DeadlineExceeded, ("progress",)),
        id="a layer trickling at one byte a second hits the progress deadline",
    ),
    pytest.param(
        lambda i: [
            Rule(_blob(i, 0), f.reset_at(LAYER_BYTES // 2), times=1),
            Rule(_blob(i, 0), f.wrong_range(_layer0(i), 4096), range_only=True),
        ],
        Fails(VerificationError, ("content-range",)),
        id="a range answered from the wrong offset is refused",
    ),
]


@pytest.mark.parametrize(("script", "outcome"), HEALING + FAILING)
async def test_fault_heals_or_fails_clearly_and_commits_nothing_unverified(
    pushed: tuple[Image, Pushed],
    registry_plain: RegistryServer,
    start_proxy: StartProxy,
    open_store: OpenStore,
    script: Script,
    outcome: Heals | Fails,
) -> None:
    image, _ = pushed
    proxy = await start_proxy(registry_plain, script(image))
    store = open_store(proxy.host)
    ref = f"{proxy.host}/{REPO}:v1"

    if isinstance(outcome, Heals):
        pulled = await store.pull(ref)
        assert pulled.manifest_digest == image.digest
        assert _layer_files(store, ref) == _expected_files(image)
        assert _resumed(proxy) == outcome.resumed
    else:
        with pytest.raises(outcome.error) as caught:
            await store.pull(ref)
        _assert_names_registry_digest_fault(
            str(caught.value), proxy.host, outcome.digest(image), outcome.words
        )
        assert store.list_images() == []

    assert all(rule.fired for rule in proxy.rules), "a fault was never injected"
    _assert_nothing_unverified(store)


async def test_a_failed_pull_leaves_a_store_that_a_clean_pull_completes(
    pushed: tuple[Image, Pushed],
    registry_plain: RegistryServer,
    start_proxy: StartProxy,
    open_store: OpenStore,
) -> None:
    image, _ = pushed
    proxy = await start_proxy(registry_plain, [Rule(_blob(image, 1), f.corrupt())])
    store = open_store(proxy.host)
    ref = f"{proxy.host}/{REPO}:v1"
    with pytest.raises(VerificationError):
        await store.pull(ref)

    proxy.rules.clear()
    await store.pull(ref)

    assert _layer_files(store, ref) == _expected_files(image)
    assert proxy.blob_bytes(image.layers[0].digest) <= 2 * image.layers[0].size
    _assert_nothing_unverified(store)


async def test_c32_a_manifest_served_for_the_wrong_digest_is_refused(
    pushed: tuple[Image, Pushed],
    registry_plain: RegistryServer,
    start_proxy: StartProxy,
    open_store: OpenStore,
) -> None:
    image, _ = pushed
    other = big_image(1, 4096, seed=42)
    push_image(registry_plain, REPO, "other", other)
    rules = [
        Rule("/manifests/sha256:", f.replace_body(other.manifest, other.media_type))
    ]
    proxy = await start_proxy(registry_plain, rules)
    store = open_store(proxy.host)

    with pytest.raises(VerificationError) as caught:
        await store.pull(f"{proxy.host}/{REPO}@{image.digest}")

    _assert_names_registry_digest_fault(
        str(caught.value),
        proxy.host,
        image.digest.hex[:12],
        ("manifest verification failed",),
    )
    assert store.list_images() == []
    _assert_nothing_unverified(store)


# --- helpers -----------------------------------------------------------------------


def _resumed(proxy: FaultProxy) -> bool:
    return any(s.range and not s.range.startswith("bytes=0-") for s in proxy.seen)


def _expected_files(image: Image) -> list[str]:
    return [
        hashlib.sha256(random.Random(41 * 1000 + i).randbytes(LAYER_BYTES)).hexdigest()
        for i in range(len(image.layers))
    ]


def _layer_files(store: ImageService, ref: str) -> list[str]:
    dirs = list(reversed(store.snapshot_dirs(store.get(ref))))
    return [
        hashlib.sha256((d / "data" / str(i)).read_bytes()).hexdigest()
        for i, d in enumerate(dirs)
    ]


def _assert_names_registry_digest_fault(
    message: str, host: str, digest_hex: str, words: tuple[str, ...]
) -> None:
    lowered = message.lower()
    assert host in message, f"no registry in: {message}"
    assert digest_hex in message, f"no digest in: {message}"
    for word in words:
        assert word.lower() in lowered, f"no {word!r} in: {message}"


def _assert_nothing_unverified(store: ImageService) -> None:
    report = store.check()
    assert report.clean, report.problems
    assert list(store.snapshots.dir.glob("*.partial")) == []
    for record in store.list_images():
        for digest in (record.manifest_digest, record.image_id):
            store.store.verify(digest)


async def test_the_cli_progress_timeout_fails_a_trickling_pull_with_deadline_exceeded(
    pushed: tuple[Image, Pushed],
    registry_plain: RegistryServer,
    start_proxy: StartProxy,
    tmp_path: Path,
) -> None:
    image, _ = pushed
    proxy = await start_proxy(registry_plain, [Rule(_blob(image, 0), f.trickle(1))])
    argv = [
        str(Path(sys.executable).with_name("sandpull")), "pull",
        "--root", str(tmp_path / "store"), "--progress-timeout", "2",
        f"{proxy.host}/{REPO}:v1",
    ]  # fmt: skip

    done = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(done.communicate(), timeout=120)

    assert done.returncode == 4, stderr  # DEADLINE_EXCEEDED
    message = stderr.decode().strip().splitlines()[-1]
    assert message.startswith("error: ") and "progress" in message
    assert str(image.layers[0].digest.short) in message or proxy.host in message
