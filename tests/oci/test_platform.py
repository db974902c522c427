"""Platform normalisation and index entry selection (C24, C25, C27)."""

from __future__ import annotations

import json

import pytest

from sandpull.errors import InvalidArgument, NotFound
from sandpull.oci import Digest, Index, Platform, mediatype, parse_document


def _entry(
    platform: dict[str, str] | None, n: int, **extra: object
) -> dict[str, object]:
    entry: dict[str, object] = {
        "mediaType": mediatype.OCI_MANIFEST,
        "digest": str(Digest.of(str(n).encode())),
        "size": 100 + n,
    }
    if platform is not None:
        entry["platform"] = platform
    entry.update(extra)
    return entry


def _index(*entries: dict[str, object], media_type: str = mediatype.OCI_INDEX) -> Index:
    doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": list(entries)}
    index = parse_document(json.dumps(doc).encode())
    assert isinstance(index, Index)
    return index


AMD64 = {"os": "linux", "architecture": "amd64"}
ARM64 = {"os": "linux", "architecture": "arm64"}
ARM = {"os": "linux", "architecture": "arm"}
ARM_V6 = {"os": "linux", "architecture": "arm", "variant": "v6"}
ARM_V5 = {"os": "linux", "architecture": "arm", "variant": "v5"}
ARM64_V8 = {"os": "linux", "architecture": "arm64", "variant": "v8"}
UNKNOWN = {"os": "unknown", "architecture": "unknown"}
ATTEST = {"vnd.docker.reference.type": "attestation-manifest"}

SELECTION = [
    (
        "C24 arm64 without variant serves an arm64/v8 host",
        [AMD64, ARM64, ARM],
        "linux/arm64/v8",
        1,
    ),
    ("arm64/v8 entry serves an arm64 host", [AMD64, ARM64_V8], "linux/arm64", 1),
    ("arm without variant is v7", [ARM_V6, ARM], "linux/arm/v7", 1),
    ("arm v7 host takes v6 when no v7", [AMD64, ARM_V5, ARM_V6], "linux/arm/v7", 2),
    ("arm v7 host takes v5 when nothing closer", [AMD64, ARM_V5], "linux/arm/v7", 1),
    ("x86_64 alias is amd64", [ARM64, AMD64], "linux/x86_64", 1),
    ("first exact entry wins among equals", [AMD64, AMD64], "linux/amd64", 0),
]


@pytest.mark.parametrize(
    ("entries", "want", "position"),
    [s[1:] for s in SELECTION],
    ids=[s[0] for s in SELECTION],
)
def test_index_selects_the_best_platform(
    entries: list[dict[str, str]], want: str, position: int
) -> None:
    index = _index(*(_entry(p, i) for i, p in enumerate(entries)))
    assert index.select(Platform.parse(want)) == index.manifests[position]


@pytest.mark.parametrize("attestation_first", [True, False])
def test_c25_attestation_entries_are_never_selected(attestation_first: bool) -> None:
    attestation = _entry(UNKNOWN, 9, annotations=ATTEST)
    images = [_entry(AMD64, 0), _entry(ARM64, 1)]
    entries = [attestation, *images] if attestation_first else [*images, attestation]
    index = _index(*entries)
    chosen = index.select(Platform.parse("linux/amd64"))
    assert chosen.platform == Platform("linux", "amd64")
    with pytest.raises(NotFound, match="offers"):
        _index(attestation).select(Platform.parse("linux/amd64"))


def test_attestation_annotation_alone_excludes_an_entry() -> None:
    index = _index(_entry(AMD64, 0, annotations=ATTEST))
    with pytest.raises(NotFound):
        index.select(Platform.parse("linux/amd64"))


def test_arm64_host_never_takes_arm32() -> None:
    with pytest.raises(NotFound, match="linux/arm/v7"):
        _index(_entry(ARM, 0)).select(Platform.parse("linux/arm64"))


def test_c27_docker_list_with_oci_children_is_accepted() -> None:
    index = _index(
        _entry(AMD64, 0),
        _entry(ARM64_V8, 1),
        media_type=mediatype.DOCKER_MANIFEST_LIST,
    )
    chosen = index.select(Platform.parse("linux/arm64/v8"))
    assert chosen.media_type == mediatype.OCI_MANIFEST


@pytest.mark.parametrize("text", ["linux", "linux/", "/amd64", "a/b/c/d"])
def test_bad_platform_flag_is_rejected(text: str) -> None:
    with pytest.raises(InvalidArgument):
        Platform.parse(text)
