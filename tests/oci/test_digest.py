"""Digests and chain ids."""

from __future__ import annotations

import hashlib

import pytest

from sandpull.errors import InvalidArgument
from sandpull.oci import EMPTY_LAYER_DIFF_ID, Digest, chain_ids


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_digest_of_bytes_round_trips_and_verifies(algorithm: str) -> None:
    digest = Digest.of(b"sandpull", algorithm)
    assert Digest.parse(str(digest)) == digest
    assert digest.hex == hashlib.new(algorithm, b"sandpull").hexdigest()
    assert digest.matches(b"sandpull")
    assert not digest.matches(b"sandpul")


@pytest.mark.parametrize(
    "text",
    [
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha512:" + "a" * 64,
        "sha1:" + "a" * 40,
        "abc",
    ],
)
def test_malformed_digest_is_rejected(text: str) -> None:
    with pytest.raises(InvalidArgument):
        Digest.parse(text)


def test_c21_empty_layer_diff_id_is_sha256_of_1024_zero_bytes() -> None:
    assert Digest.of(b"\0" * 1024) == EMPTY_LAYER_DIFF_ID


def test_chain_ids_follow_the_image_spec_formula() -> None:
    a, b, c = (Digest.of(x) for x in (b"a", b"b", b"c"))
    chain = chain_ids([a, b, c])
    ab = Digest.of(f"{a} {b}".encode())
    assert chain == [a, ab, Digest.of(f"{ab} {c}".encode())]
