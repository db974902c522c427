"""Reference parsing and normalisation, as Docker users expect it."""

from __future__ import annotations

import pytest

from sandpull.errors import InvalidArgument
from sandpull.oci import Digest, Reference

D256 = "sha256:" + "a" * 64
D512 = "sha512:" + "b" * 128

NORMALISED = [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("u/private", "docker.io/u/private:latest"),
    ("docker.io/u/private", "docker.io/u/private:latest"),
    ("index.docker.io/u/private", "docker.io/u/private:latest"),
    ("docker.io/alpine", "docker.io/library/alpine:latest"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/app:v1", "localhost:5000/app:v1"),
    ("127.0.0.1:5000/ns/repo:tag", "127.0.0.1:5000/ns/repo:tag"),
    ("[::1]:5000/repo", "[::1]:5000/repo:latest"),
    ("quay.io/a/b/c", "quay.io/a/b/c:latest"),
    (f"host:5000/ns/repo@{D256}", f"host:5000/ns/repo@{D256}"),
    (f"repo:tag@{D256}", f"docker.io/library/repo:tag@{D256}"),
    (f"repo@{D512}", f"docker.io/library/repo@{D512}"),
    ("a/b__c/d-e.f_g", "docker.io/a/b__c/d-e.f_g:latest"),
    ("reg.example/repo:v1.2-rc_3", "reg.example/repo:v1.2-rc_3"),
]


@pytest.mark.parametrize(("text", "want"), NORMALISED, ids=[t for t, _ in NORMALISED])
def test_reference_normalises_like_docker(text: str, want: str) -> None:
    ref = Reference.parse(text)
    assert str(ref) == want
    assert Reference.parse(str(ref)) == ref


REJECTED = [
    ("", "empty"),
    (" busybox", "padded"),
    ("Busybox", "lowercase"),
    ("reg.example/Repo", "lowercase"),
    ("repo:", "invalid tag"),
    ("repo:-bad", "invalid tag"),
    ("repo:" + "t" * 129, "invalid tag"),
    ("repo@sha256:abc", "lowercase hex"),
    ("repo@md5:" + "a" * 32, "unsupported algorithm"),
    ("repo@" + "a" * 64, "missing algorithm"),
    ("a" * 64, "image id"),
    ("repo//x", "invalid path component"),
    ("repo/-x", "invalid path component"),
    ("repo/x-", "invalid path component"),
    ("-reg.example/repo", "invalid registry"),
    ("reg.example/" + "a" * 250, "longer than"),
]


@pytest.mark.parametrize(
    ("text", "why"), REJECTED, ids=[w + ": " + t[:20] for t, w in REJECTED]
)
def test_bad_reference_is_rejected_with_reason(text: str, why: str) -> None:
    with pytest.raises(InvalidArgument, match=why):
        Reference.parse(text)


def test_c30_sha512_reference_keeps_its_algorithm() -> None:
    ref = Reference.parse(f"127.0.0.1:5000/repo@{D512}")
    assert ref.digest == Digest("sha512", "b" * 128)
    assert ref.object == D512
    assert ref.tag is None


def test_digest_wins_over_tag_when_both_are_given() -> None:
    ref = Reference.parse(f"repo:tag@{D256}")
    assert ref.tag == "tag"
    assert ref.object == D256


@pytest.mark.parametrize(
    ("text", "familiar"),
    [
        ("busybox", "busybox:latest"),
        ("docker.io/u/app:1", "u/app:1"),
        ("127.0.0.1:5000/app:1", "127.0.0.1:5000/app:1"),
    ],
)
def test_familiar_name_drops_default_registry_and_library(
    text: str, familiar: str
) -> None:
    assert Reference.parse(text).familiar() == familiar
