"""Hostile and malformed layers pushed to the real registry and pulled with the CLI.

Each case is built here, pushed as an image to the distribution registry and
pulled with ``sandpull pull``. The expected outcome is either a rejection (exit
code and a word of the one-line error) or a safe application (exit 0, ``check``
clean, the entry landed inside the store). After every case the canary tree,
which lives outside the store root and which symlinks in the layers aim at, is
compared byte for byte, mode for mode, mtime for mtime: unchanged.

The unit tables in ``tests/unpack/test_hostile.py`` cover the applier alone; these
go through download, digest and ``diff_id`` checks, snapshots and commit.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandpull.oci import Compression, Digest, mediatype
from tests.cli.conftest import Cli
from tests.support.images import Image, build_image, push_image
from tests.support.layers import Layer, compress, make_layer
from tests.support.registry_server import RegistryServer
from tests.support.trees import compare_trees, tree_snapshot
from tests.unpack.tarbuild import Spec, build, info

pytestmark = [pytest.mark.registry]

DATA_LOSS = 15  # VerificationError and HostileEntryError
#: Layers are functions of the canary's absolute path, so links can aim at it.
Layers = Callable[[str], list[list[Spec]]]


@dataclass(frozen=True)
class Rejected:
    word: str
    code: int = DATA_LOSS


@dataclass(frozen=True)
class Applied:
    """Exit 0; ``inside`` must exist in one of the image's snapshots."""

    inside: str = ""


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("canary")
    (root / "victim-file").write_text("do not touch\n")
    (root / "dir").mkdir()
    (root / "dir" / "passwd").write_text("root:x:0:0\n")
    os.symlink("victim-file", root / "link")
    return root


@pytest.fixture
def guarded(canary: Path) -> Iterator[Path]:
    before = tree_snapshot(canary)
    yield canary
    assert compare_trees(before, tree_snapshot(canary), mtimes=True) == []


def _pax(name: str, type_: bytes = tarfile.REGTYPE, **headers: str) -> Spec:
    return (info(name, type_, pax_headers=headers), b"")


def _node(name: str, type_: bytes, **fields: object) -> Spec:
    return (info(name, type_, **fields), b"")


_TYPES: list[tuple[str, Callable[[str], Spec | str]]] = [
    ("file", lambda n: f"{n}=x"),
    ("directory", lambda n: f"{n}/"),
    ("symlink", lambda n: f"{n} -> target"),
    ("hardlink", lambda n: f"{n} => base"),
    ("fifo", lambda n: _node(n, tarfile.FIFOTYPE)),
    ("char device", lambda n: _node(n, tarfile.CHRTYPE, devmajor=1, devminor=3)),
]

NAMES: list[object] = [
    *(
        pytest.param(
            lambda c, make=make: [["base", make("../../escape-entry")]],
            Rejected("climbs above the root"),
            id=f"C15 a {kind} named with .. climbing out is rejected",
        )
        for kind, make in _TYPES
    ),
    *(
        pytest.param(
            lambda c, make=make: [["base", make("/abs-entry")]],
            Applied("abs-entry"),
            id=f"C15 a {kind} with an absolute name lands inside the root",
        )
        for kind, make in _TYPES
    ),
]

LINKS: list[object] = [
    pytest.param(
        lambda c: [[f"x -> {c}/dir", "x/pwn=PWNED"]],
        Applied(),
        id="C14 a symlink to outside then a file through it in one layer stays inside",
    ),
    pytest.param(
        lambda c: [[f"x -> {c}/dir"], ["x/pwn=PWNED"]],
        Applied(),
        id="C13 a symlink to outside then a file through it a layer later stays inside",
    ),
    pytest.param(
        lambda c: [
            ["x -> ../../../../../../../../.." + c + "/dir"],
            ["x/passwd=PWNED"],
        ],
        Applied(),
        id="C14 a relative symlink climbing far is clamped and written inside",
    ),
    pytest.param(
        lambda c: [[f"moo -> {c}/victim-file", "moo=PWNED"]],
        Applied("moo"),
        id="C14 a file replacing a symlink to outside replaces the link",
    ),
    pytest.param(
        lambda c: [["d/", "d/f"], [f"d -> {c}/dir"], ["d/g=PWNED"], ["d/", "d/h"]],
        Applied(),
        id="a directory swapped for a symlink to outside and back stays inside",
    ),
    pytest.param(
        lambda c: [[f"x -> {c}/dir"], ["x/.wh.passwd"]],
        Applied(),
        id="C13 a whiteout through a symlink to outside deletes nothing outside",
    ),
    pytest.param(
        lambda c: [[f"x -> {c}/dir"], ["x/.wh..wh..opq"]],
        Applied(),
        id="an opaque marker through a symlink to outside hides nothing outside",
    ),
    pytest.param(
        lambda c: [["innocent.txt => ../victim-file", "innocent.txt=PWNED"]],
        Rejected("climbs above the root"),
        id="C12 a hardlink to a file outside the root is rejected",
    ),
    pytest.param(
        lambda c: [[f"innocent.txt => {c}/victim-file", "innocent.txt=PWNED"]],
        Rejected("not extracted"),
        id="C12 a hardlink to the canary's absolute path is rejected",
    ),
    pytest.param(
        lambda c: [[f"s -> {c}/victim-file", "h => s", "h=PWNED"]],
        Applied("h"),
        id="a hardlink to a symlink aimed outside is rewritten, never written through",
    ),
    pytest.param(
        lambda c: [["h => missing"]],
        Rejected("not extracted"),
        id="a hardlink to a missing target is rejected",
    ),
    pytest.param(
        lambda c: [["f"], [".wh.f", "h => f"]],
        Rejected("not extracted"),
        id="a hardlink to a whited-out file is rejected",
    ),
]

ODD: list[object] = [
    pytest.param(
        lambda c: [[(info("."), b"x")]],
        Rejected("root must be a directory"),
        id="an entry named . that is a file is rejected",
    ),
    pytest.param(
        lambda c: [[_node("/", tarfile.SYMTYPE, linkname=f"{c}")]],
        Rejected("root must be a directory"),
        id="an entry named / that is a symlink to outside is rejected",
    ),
    pytest.param(
        lambda c: [["./", "etc/"]],
        Applied("etc"),
        id="an entry named ./ that is a directory is applied",
    ),
    *(
        pytest.param(
            lambda c, name=name: [["etc/", "etc/passwd"], [f"etc/{name}"]],
            Rejected("whiteout"),
            id=f"C05 a bare {name} whiteout is rejected, never deleting its parent",
        )
        for name in (".wh.", ".wh..", ".wh...")
    ),
    pytest.param(
        lambda c: [["etc/"], [".wh."]],
        Rejected("whiteout"),
        id="C05 a bare .wh. at the layer root is rejected",
    ),
    pytest.param(
        lambda c: [
            [
                _node("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3),
                _node("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0),
                _node("run/fifo", tarfile.FIFOTYPE),
            ]
        ],
        Applied("run/fifo"),
        id="C20 device nodes and a fifo are applied without opening them",
    ),
    pytest.param(
        lambda c: [[(info("bin/su", mode=0o4755, size=2), b"su")]],
        Applied("bin/su"),
        id="a setuid file is applied as a plain file inside the root",
    ),
    pytest.param(
        lambda c: [[_pax("f", **{"SCHILY.xattr.user.big": "x" * 70_000})]],
        Rejected("65536"),
        id="a huge xattr is rejected",
    ),
    pytest.param(
        lambda c: [[_pax("f", path="../../pax-escape")]],
        Rejected("climbs above the root"),
        id="a pax path climbing out is rejected",
    ),
    pytest.param(
        lambda c: [[_pax("f", path=f"{c}/pax-abs")]],
        Applied(),
        id="a pax path naming the canary absolutely lands inside the root",
    ),
    pytest.param(
        lambda c: [[_pax("f", path="a\0b")]],
        Rejected("nul"),
        id="a pax path holding a nul byte is rejected",
    ),
    pytest.param(
        lambda c: [["a", _pax("g", tarfile.LNKTYPE, linkpath="../../victim-file")]],
        Rejected("climbs above the root"),
        id="a pax hardlink path climbing out is rejected",
    ),
]


def _push(server: RegistryServer, repo: str, image: Image) -> str:
    return push_image(server, repo, "v1", image).ref


def _gzip_layers(tars: list[bytes]) -> list[Layer]:
    return [make_layer(t, mediatype.OCI_LAYER_GZIP, Compression.GZIP) for t in tars]


def _pull(cli: Cli, ref: str) -> tuple[int, str]:
    result = cli.run(*cli.pull_args(ref))
    return result.returncode, result.stderr


def _assert_outcome(
    cli: Cli, ref: str, outcome: Rejected | Applied, code: int, stderr: str
) -> None:
    if isinstance(outcome, Rejected):
        assert code == outcome.code, stderr
        error = stderr.strip().splitlines()[-1]
        assert error.startswith("error: "), stderr
        assert outcome.word in error.lower(), stderr
        assert json.loads(cli.ok("images", "--json")) == []
    else:
        assert code == 0, stderr
        snapshots = json.loads(cli.ok("inspect", ref))["snapshots"]
        if outcome.inside:
            assert any(os.path.lexists(Path(d, outcome.inside)) for d in snapshots)
    assert "problem" not in cli.ok("check")
    assert list((cli.root / "snapshots").glob("*.partial")) == []


@pytest.mark.parametrize(("layers", "outcome"), NAMES + LINKS + ODD)
def test_hostile_layer_is_rejected_or_applied_inside_the_root(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    registry_plain: RegistryServer,
    guarded: Path,
    layers: Layers,
    outcome: Rejected | Applied,
) -> None:
    tars = [build(specs) for specs in layers(str(guarded))]
    repo = f"hostile/case-{abs(hash(request.node.callspec.id)) % 10**8}"
    ref = _push(registry_plain, repo, build_image(_gzip_layers(tars)))
    cli = Cli(tmp_path / "store", registry_plain, tmp_path)

    code, stderr = _pull(cli, ref)

    _assert_outcome(cli, ref, outcome, code, stderr)


# --- streams that are not what they claim -----------------------------------------

_BASE = build(["etc/", "etc/hostname=sandpull\n", "bin/", "bin/sh=#!"])


def _sparse() -> bytes:
    from tests.support.layers import sparse, tar_entries

    return tar_entries([sparse("holes", 64 << 20, [(0, b"a"), (40 << 20, b"b")])])


def _trailing(garbage: bytes) -> bytes:
    return _BASE + garbage


def _truncated() -> bytes:
    big = build([f"big={'x' * 100_000}"])
    return big[: len(big) // 2]


STREAMS: list[object] = [
    pytest.param(
        lambda: _gzip_layers([_sparse()]),
        None,
        Applied("holes"),
        id="a pax sparse file is applied with its holes",
    ),
    pytest.param(
        lambda: _gzip_layers([_trailing(bytes(10240))]),
        None,
        Applied("etc/hostname"),
        id="C17 zero padding after the end of the archive is hashed and applied",
    ),
    pytest.param(
        lambda: _gzip_layers([_trailing(b"GARBAGE!" * 1000)]),
        None,
        Applied("etc/hostname"),
        id="trailing garbage after the end of the archive is hashed and ignored",
    ),
    pytest.param(
        lambda: _gzip_layers([_truncated()]),
        None,
        Rejected("ends 49312 bytes early"),
        id="a tar cut off in the middle of a file is rejected",
    ),
    pytest.param(
        lambda: [_truncated_gzip(_BASE)],
        None,
        Rejected("end-of-stream marker"),
        id="a gzip stream cut off before its end is rejected",
    ),
    pytest.param(
        lambda: _gzip_layers([_BASE]),
        lambda layers: [Digest.of(b"not the layer")],
        Rejected("diff_id"),
        id="a layer whose content does not match its diff_id is rejected",
    ),
]


def _truncated_gzip(tar: bytes) -> Layer:
    blob = compress(tar, Compression.GZIP)[:-12]
    return Layer(blob, mediatype.OCI_LAYER_GZIP, Digest.of(tar), Compression.GZIP)


@pytest.mark.parametrize(("make", "diff_ids", "outcome"), STREAMS)
def test_malformed_stream_is_rejected_or_applied(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    registry_plain: RegistryServer,
    guarded: Path,
    make: Callable[[], list[Layer]],
    diff_ids: Callable[[list[Layer]], list[Digest]] | None,
    outcome: Rejected | Applied,
) -> None:
    layers = make()
    image = build_image(layers)
    if diff_ids is not None:
        image = build_image(layers, config=_config_with(image, diff_ids(layers)))
    repo = f"hostile/stream-{abs(hash(request.node.callspec.id)) % 10**8}"
    ref = _push(registry_plain, repo, image)
    cli = Cli(tmp_path / "store", registry_plain, tmp_path)

    code, stderr = _pull(cli, ref)

    _assert_outcome(cli, ref, outcome, code, stderr)


def test_a_descriptor_size_that_lies_is_rejected(
    tmp_path: Path, registry_plain: RegistryServer, guarded: Path
) -> None:
    layer = _gzip_layers([_BASE])[0]
    image = build_image([layer])
    doc = json.loads(image.manifest)
    doc["layers"][0]["size"] += 10
    manifest = json.dumps(doc).encode()
    for blob in (image.config, layer.blob):
        registry_plain.push_blob("hostile/size", blob)
    registry_plain.push_manifest("hostile/size", "v1", manifest, image.media_type)
    cli = Cli(tmp_path / "store", registry_plain, tmp_path)

    code, stderr = _pull(cli, f"{registry_plain.host}/hostile/size:v1")

    assert code != 0, stderr
    assert layer.digest.hex[:12] in stderr, stderr
    assert json.loads(cli.ok("images", "--json")) == []
    assert "problem" not in cli.ok("check")


def _config_with(image: Image, diff_ids: list[Digest]) -> bytes:
    doc = json.loads(image.config)
    doc["rootfs"]["diff_ids"] = [str(d) for d in diff_ids]
    return json.dumps(doc).encode()
