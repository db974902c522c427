"""The layer stream: compression, diff_id, trailing bytes, truncation, bombs."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import zstandard

from sandpull.errors import FailedPrecondition, ResourceExhausted, VerificationError
from sandpull.oci import EMPTY_LAYER_DIFF_ID, Compression, Digest
from sandpull.unpack import ApplyOptions, apply_layer
from tests.unpack import tarbuild
from tests.unpack.conftest import Stack

TAR = tarbuild.build(["etc/", "etc/hostname=box"])


def _compress(data: bytes, compression: Compression) -> bytes:
    if compression is Compression.GZIP:
        return gzip.compress(data)
    if compression is Compression.ZSTD:
        return zstandard.ZstdCompressor().compress(data)
    return data


@pytest.mark.parametrize(
    "compression",
    [
        pytest.param(Compression.NONE, id="a plain tar layer applies"),
        pytest.param(Compression.GZIP, id="a gzip layer applies"),
        pytest.param(Compression.ZSTD, id="C23 an OCI zstd layer applies"),
    ],
)
def test_layer_applies_and_reports_its_diff_id(
    stack: Stack, compression: Compression
) -> None:
    applied = stack.apply(
        _compress(TAR, compression), compression=compression, diff_id=Digest.of(TAR)
    )

    assert (applied.diff_id, applied.size, applied.entries) == (
        Digest.of(TAR),
        len(TAR),
        2,
    )
    assert (stack.snapshots[0] / "etc/hostname").read_text() == "box"


def test_multi_member_gzip_is_one_stream(stack: Stack) -> None:
    half = len(TAR) // 2
    blob = gzip.compress(TAR[:half]) + gzip.compress(TAR[half:])

    applied = stack.apply(blob, compression=Compression.GZIP, diff_id=Digest.of(TAR))

    assert applied.entries == 2


def test_multi_frame_zstd_is_one_stream(stack: Stack) -> None:
    half = len(TAR) // 2
    z = zstandard.ZstdCompressor()
    blob = z.compress(TAR[:half]) + z.compress(TAR[half:])

    applied = stack.apply(blob, compression=Compression.ZSTD, diff_id=Digest.of(TAR))

    assert applied.entries == 2


@pytest.mark.parametrize(
    ("content", "declared"),
    [
        pytest.param(
            Compression.GZIP,
            Compression.ZSTD,
            id="C23 gzip bytes under a zstd type fail before extraction",
        ),
        pytest.param(
            Compression.ZSTD,
            Compression.GZIP,
            id="C23 zstd bytes under a gzip type fail before extraction",
        ),
        pytest.param(
            Compression.ZSTD,
            Compression.NONE,
            id="C23 zstd bytes under a plain tar type fail before extraction",
        ),
        pytest.param(
            Compression.NONE,
            Compression.GZIP,
            id="plain tar bytes under a gzip type fail before extraction",
        ),
    ],
)
def test_magic_mismatch_fails_before_extraction(
    stack: Stack, content: Compression, declared: Compression
) -> None:
    with pytest.raises(VerificationError, match=f"media type says {declared.value}"):
        stack.apply(_compress(TAR, content), compression=declared)

    assert list((stack.base / "1" / "fs").iterdir()) == []


@pytest.mark.parametrize(
    "compression",
    [
        pytest.param(
            Compression.GZIP,
            id="C17 trailing zeros after the tar end are hashed in gzip",
        ),
        pytest.param(
            Compression.NONE,
            id="C17 trailing zeros after the tar end are hashed in a plain tar",
        ),
    ],
)
def test_C17_trailing_bytes_count_in_the_diff_id(
    stack: Stack, compression: Compression
) -> None:
    padded = TAR + bytes(10 * 1024)

    applied = stack.apply(
        _compress(padded, compression),
        compression=compression,
        diff_id=Digest.of(padded),
    )

    assert (applied.size, applied.entries) == (len(padded), 2)


@pytest.mark.parametrize(
    "blob",
    [
        pytest.param(
            bytes(1024), id="C21 a layer of 1024 zero bytes is an empty layer"
        ),
        pytest.param(b"", id="C21 a zero byte stream is an empty layer"),
    ],
)
def test_C21_empty_layer_changes_nothing(stack: Stack, blob: bytes) -> None:
    applied = stack.apply(
        gzip.compress(blob), compression=Compression.GZIP, diff_id=Digest.of(blob)
    )

    assert applied.entries == 0
    assert list(stack.snapshots[0].iterdir()) == []


def test_C21_empty_layer_has_the_well_known_diff_id(stack: Stack) -> None:
    applied = stack.apply(gzip.compress(bytes(1024)), compression=Compression.GZIP)

    assert applied.diff_id == EMPTY_LAYER_DIFF_ID


def test_wrong_diff_id_names_the_layer(stack: Stack) -> None:
    wrong = Digest.of(b"something else")

    with pytest.raises(VerificationError, match=r"verify layer sha256:\w{12}: diff_id"):
        stack.apply(TAR, diff_id=wrong)


def test_diff_id_uses_its_own_algorithm(stack: Stack) -> None:
    want = Digest("sha512", hashlib.sha512(TAR).hexdigest())

    assert stack.apply(TAR, diff_id=want).diff_id == want


BIG = tarbuild.build([("big=" + "x" * 300_000)])


@pytest.mark.parametrize(
    "blob",
    [
        pytest.param(TAR[:700], id="a tar cut inside a file's data is rejected"),
        pytest.param(TAR[:1536], id="a tar cut at an entry boundary is rejected"),
        pytest.param(TAR[:600], id="a tar cut inside a header is rejected"),
        pytest.param(BIG[:200_000], id="a tar cut inside a large file is rejected"),
        pytest.param(
            TAR[:512] + b"\x01" * 512 + bytes(1024), id="a corrupt header is rejected"
        ),
        pytest.param(b"not a tar at all" * 64, id="bytes that are no tar are rejected"),
    ],
)
def test_truncated_or_corrupt_tar_is_rejected(stack: Stack, blob: bytes) -> None:
    with pytest.raises(VerificationError, match="layer sha256:"):
        stack.apply(blob)


def test_truncated_gzip_is_rejected(stack: Stack) -> None:
    with pytest.raises(VerificationError, match="decompress layer"):
        stack.apply(gzip.compress(TAR)[:-20], compression=Compression.GZIP)


def test_truncated_zstd_is_rejected(stack: Stack) -> None:
    blob = zstandard.ZstdCompressor().compress(TAR)

    with pytest.raises(VerificationError, match="layer sha256:"):
        stack.apply(blob[: len(blob) // 2], compression=Compression.ZSTD)


def test_gzip_bomb_stops_at_the_bound(stack: Stack, tmp_path: Path) -> None:
    bomb = tarbuild.build([("zeros=" + "\0" * (8 << 20))])

    with pytest.raises(ResourceExhausted, match="exceeds 1048576 bytes"):
        stack.apply(
            gzip.compress(bomb),
            compression=Compression.GZIP,
            options=ApplyOptions(max_uncompressed=1 << 20),
        )


def test_layer_within_the_bound_applies(stack: Stack) -> None:
    applied = stack.apply(TAR, options=ApplyOptions(max_uncompressed=len(TAR)))

    assert applied.size == len(TAR)


def test_target_must_be_empty(stack: Stack) -> None:
    target = stack.base / "1" / "fs"
    target.mkdir(parents=True)
    (target / "stale").write_text("x")

    with pytest.raises(FailedPrecondition, match="not empty"):
        apply_layer(
            io.BytesIO(TAR),
            compression=Compression.NONE,
            target=target,
            lowers=[],
            layer=Digest.of(TAR),
            diff_id=None,
        )


def test_gnu_format_long_names_apply(stack: Stack) -> None:
    name = "d/" + "n" * 200
    stack.apply(tarbuild.build([f"{name}=long"], fmt=tarfile.GNU_FORMAT))

    assert (stack.snapshots[0] / name).read_text() == "long"
