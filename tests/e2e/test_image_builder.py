"""The test image builder: what it writes is what the tables say, every time."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from sandpull.oci import (
    Compression,
    Digest,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    mediatype,
    parse_document,
)
from tests.support.catalogue import NAMES, SMALL_NAMES, Catalogue
from tests.support.images import ImageIndex, gzip_twin
from tests.support.layers import (
    Entry,
    block,
    char,
    compress,
    decompress,
    dir_,
    fifo,
    file,
    hardlink,
    make_layer,
    opaque,
    sparse,
    symlink,
    tar_entries,
    whiteout,
)

BINARY_XATTR = b"\x01\x00\x00\x02\x00\xff\x00"


def _members(entries: list[Entry]) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(tar_entries(entries))) as archive:
        return {m.name: m for m in archive}


ROUND_TRIPS = [
    (
        file("f", "x", mode=0o4755, uid=7, gid=8),
        "f",
        "isreg",
        {"mode": 0o4755, "uid": 7},
    ),
    (dir_("d/", mode=0o1777), "d", "isdir", {"mode": 0o1777}),
    (symlink("l", "/abs/target"), "l", "issym", {"linkname": "/abs/target"}),
    (hardlink("h", "/f"), "h", "islnk", {"linkname": "/f"}),
    (char("c", 5, 1), "c", "ischr", {"devmajor": 5, "devminor": 1}),
    (block("b", 7, 0), "b", "isblk", {"devmajor": 7, "devminor": 0}),
    (fifo("p"), "p", "isfifo", {}),
    (whiteout("etc/passwd"), "etc/.wh.passwd", "isreg", {"size": 0}),
    (opaque("var/log/"), "var/log/.wh..wh..opq", "isreg", {"size": 0}),
    (sparse("s", 1 << 20, [(4096, b"data")]), "s", "isreg", {"size": 1 << 20}),
]


@pytest.mark.parametrize(
    ("entry", "name", "test", "want"),
    [
        pytest.param(*r, id=f"a {r[0].kind} entry reads back as written")
        for r in ROUND_TRIPS
    ],
)
def test_entry_reads_back(
    entry: Entry, name: str, test: str, want: dict[str, object]
) -> None:
    member = _members([entry])[name]
    assert getattr(member, test)()
    assert {key: getattr(member, key) for key in want} == want


def test_sparse_file_reads_back_with_holes_as_zeros() -> None:
    data = tar_entries([sparse("s", 10_000, [(0, b"ab"), (8192, b"cd")])])
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        content = archive.extractfile("s").read()  # type: ignore[union-attr]
    assert content == b"ab" + bytes(8190) + b"cd" + bytes(10_000 - 8194)


def test_binary_xattr_survives_the_pax_header() -> None:
    entry = file("bin/ping", xattrs=(("security.capability", BINARY_XATTR),))
    member = _members([entry])["bin/ping"]
    value = member.pax_headers["SCHILY.xattr.security.capability"]
    assert value.encode("utf-8", "surrogateescape") == BINARY_XATTR


@pytest.mark.parametrize(
    "compression",
    [
        pytest.param(c, id=f"{c.value} layers decompress to their diff_id")
        for c in Compression
    ],
)
def test_layer_diff_id_is_the_uncompressed_digest(compression: Compression) -> None:
    tar = tar_entries([file("a", "a")])
    layer = make_layer(tar, mediatype.OCI_LAYER, compression)
    assert Digest.of(decompress(layer.blob, compression)) == layer.diff_id
    assert layer.diff_id == Digest.of(tar)


def test_compression_is_deterministic() -> None:
    tar = tar_entries([file("a", "a" * 1000)])
    assert compress(tar, Compression.GZIP) == compress(tar, Compression.GZIP)
    assert compress(tar, Compression.GZIP)[4:8] == b"\0\0\0\0"  # gzip mtime 0


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, id=f"{n} builds the same digest twice") for n in SMALL_NAMES],
)
def test_catalogue_images_are_reproducible(name: str) -> None:
    assert Catalogue().image(name).digest == Catalogue().image(name).digest


def _image_documents(catalogue: Catalogue, name: str) -> list[bytes]:
    built = catalogue.image(name)
    if isinstance(built, ImageIndex):
        return [built.data, *(e.image.manifest for e in built.entries)]
    return [built.manifest]


@pytest.mark.parametrize(
    "name", [pytest.param(n, id=f"{n} parses with sandpull.oci") for n in SMALL_NAMES]
)
def test_catalogue_documents_parse(name: str) -> None:
    catalogue = Catalogue()
    image = catalogue.platform_image(name)
    for data in _image_documents(catalogue, name):
        assert isinstance(parse_document(data), Manifest | Index)
    config = ImageConfig.parse(image.config)
    assert config.diff_ids == image.diff_ids


def test_multiarch_index_selects_the_host_and_never_the_attestation() -> None:
    built = Catalogue().image("multiarch")
    assert isinstance(built, ImageIndex)
    index = parse_document(built.data)
    assert isinstance(index, Index)
    assert index.manifests[0].platform == Platform("unknown", "unknown")  # C25
    chosen = index.select(Platform("linux", "arm64", "v8"))  # C24: none means v8
    assert chosen.digest == built.for_platform(Platform("linux", "arm64")).digest
    assert chosen.platform == Platform("linux", "arm64")


@pytest.mark.parametrize(
    ("name", "manifest_type", "layer_type"),
    [
        pytest.param("docker-v2s2", mediatype.DOCKER_MANIFEST,
                     mediatype.DOCKER_LAYER_GZIP, id="docker-v2s2 uses Docker types"),
        pytest.param("zstd", mediatype.OCI_MANIFEST, mediatype.OCI_LAYER_ZSTD,
                     id="C23 zstd uses OCI zstd layers"),
        pytest.param("docker-zstd", mediatype.DOCKER_MANIFEST,
                     mediatype.DOCKER_LAYER_ZSTD, id="C23 docker-zstd uses Docker's"),
    ],
)  # fmt: skip
def test_catalogue_media_types(name: str, manifest_type: str, layer_type: str) -> None:
    doc = json.loads(Catalogue().platform_image(name).manifest)
    assert doc["mediaType"] == manifest_type
    assert {layer["mediaType"] for layer in doc["layers"]} == {layer_type}


def test_gzip_twin_keeps_config_and_diff_ids() -> None:
    image = Catalogue().image("docker-zstd")
    assert not isinstance(image, ImageIndex)
    twin = gzip_twin(image)
    assert twin.config == image.config
    assert {x.media_type for x in twin.layers} == {mediatype.OCI_LAYER_GZIP}
    assert twin.diff_ids == image.diff_ids


def test_catalogue_names_are_all_buildable_by_name() -> None:
    assert set(SMALL_NAMES) < set(NAMES)
    assert {"small", "multiarch", "docker-v2s2", "zstd", "docker-zstd"} <= set(NAMES)
