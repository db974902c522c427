"""Manifest and index parsing from untrusted bytes (C26, C27, C28)."""

from __future__ import annotations

import json

import pytest

from sandpull.errors import InvalidArgument, UnsupportedError
from sandpull.oci import Digest, ImageConfig, Index, Manifest, mediatype, parse_document

DESC = {"mediaType": mediatype.OCI_CONFIG, "digest": str(Digest.of(b"c")), "size": 1}
LAYER = {
    "mediaType": mediatype.OCI_LAYER_GZIP,
    "digest": str(Digest.of(b"l")),
    "size": 2,
}
MANIFEST_BODY = {"schemaVersion": 2, "config": DESC, "layers": [LAYER]}
INDEX_BODY = {
    "schemaVersion": 2,
    "manifests": [dict(LAYER, mediaType=mediatype.OCI_MANIFEST)],
}

KINDS = [
    (
        "C26 index without mediaType, told by Content-Type",
        INDEX_BODY,
        mediatype.OCI_INDEX,
        "",
        Index,
    ),
    (
        "C26 index without mediaType or Content-Type, told by shape",
        INDEX_BODY,
        "",
        "",
        Index,
    ),
    ("manifest without mediaType, told by shape", MANIFEST_BODY, "", "", Manifest),
    (
        "manifest told by descriptor type",
        MANIFEST_BODY,
        "",
        mediatype.DOCKER_MANIFEST,
        Manifest,
    ),
    (
        "manifest with its own mediaType",
        dict(MANIFEST_BODY, mediaType=mediatype.DOCKER_MANIFEST),
        "application/json",
        "",
        Manifest,
    ),
    (
        "Docker list with charset parameter in Content-Type",
        INDEX_BODY,
        mediatype.DOCKER_MANIFEST_LIST + "; charset=utf-8",
        "",
        Index,
    ),
]


@pytest.mark.parametrize(
    ("body", "content_type", "descriptor_type", "kind"),
    [k[1:] for k in KINDS],
    ids=[k[0] for k in KINDS],
)
def test_document_kind_is_decided_by_type_then_shape(
    body: dict[str, object], content_type: str, descriptor_type: str, kind: type
) -> None:
    doc = parse_document(json.dumps(body).encode(), content_type, descriptor_type)
    assert isinstance(doc, kind)


REJECTED = [
    (
        "both manifests and layers",
        dict(MANIFEST_BODY, manifests=[]),
        InvalidArgument,
        "both",
    ),
    (
        "index type on a manifest body",
        dict(MANIFEST_BODY, mediaType=mediatype.OCI_INDEX),
        InvalidArgument,
        "does not match",
    ),
    (
        "C28 schema 1 by media type",
        {
            "schemaVersion": 1,
            "fsLayers": [],
            "mediaType": mediatype.DOCKER_SCHEMA1_SIGNED,
        },
        UnsupportedError,
        "schema 1",
    ),
    (
        "C28 schema 1 by version",
        {"schemaVersion": 1, "fsLayers": []},
        UnsupportedError,
        "schema 1",
    ),
    ("neither shape", {"schemaVersion": 2}, InvalidArgument, "neither"),
    (
        "layer with negative size",
        dict(MANIFEST_BODY, layers=[dict(LAYER, size=-1)]),
        InvalidArgument,
        "size",
    ),
    (
        "layer with bad digest",
        dict(MANIFEST_BODY, layers=[dict(LAYER, digest="x")]),
        InvalidArgument,
        "digest",
    ),
    ("a JSON list", [], InvalidArgument, "object"),
]


@pytest.mark.parametrize(
    ("body", "error", "match"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED]
)
def test_bad_document_is_rejected(body: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        parse_document(json.dumps(body).encode())


def test_oversized_manifest_is_rejected_before_parsing() -> None:
    with pytest.raises(InvalidArgument, match="limit"):
        parse_document(b" " * (4 * 1024 * 1024 + 1))


def test_not_json_is_rejected() -> None:
    with pytest.raises(InvalidArgument, match="not JSON"):
        parse_document(b"\xff{")


def test_config_gives_diff_ids_and_run_settings() -> None:
    a, b = Digest.of(b"a"), Digest.of(b"b")
    body = {
        "architecture": "arm64",
        "os": "linux",
        "variant": "v8",
        "rootfs": {"type": "layers", "diff_ids": [str(a), str(b)]},
        "config": {
            "Entrypoint": ["/bin/sh"],
            "Cmd": ["-c", "x"],
            "Env": ["A=1"],
            "User": "1:2",
        },
    }
    config = ImageConfig.parse(json.dumps(body).encode())
    assert config.diff_ids == (a, b)
    assert config.entrypoint == ("/bin/sh",)
    assert config.user == "1:2"
    assert str(config.platform) == "linux/arm64/v8"
    assert len(config.chain_ids) == 2


def test_config_with_non_string_cmd_is_rejected() -> None:
    body = {"rootfs": {"diff_ids": []}, "config": {"Cmd": [1]}}
    with pytest.raises(InvalidArgument, match="Cmd"):
        ImageConfig.parse(json.dumps(body).encode())
