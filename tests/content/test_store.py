"""The local content store: verification, resume, atomic commit, sizes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sandpull.content import LocalStore, TailReader
from sandpull.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    VerificationError,
)
from sandpull.oci import Descriptor, Digest

BLOB = b"sandpull content " * 1000


def descriptor(data: bytes = BLOB, algorithm: str = "sha256") -> Descriptor:
    return Descriptor("application/octet-stream", Digest.of(data, algorithm), len(data))


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "content")


@pytest.mark.parametrize(
    ("written", "want_error"),
    [
        pytest.param(BLOB, None, id="the exact bytes commit"),
        pytest.param(
            BLOB[:-1], "got 16999 bytes, want 17000", id="a short blob is refused"
        ),
        pytest.param(
            BLOB[:-1] + b"X", "does not match", id="a changed byte is refused"
        ),
    ],
)
def test_finish_verifies_size_and_digest(
    store: LocalStore, written: bytes, want_error: str | None
) -> None:
    with store.open_ingest(descriptor()) as ingest:
        ingest.write(written)
        if want_error is None:
            ingest.finish()
            store.commit(ingest)
        else:
            with pytest.raises(VerificationError, match=want_error):
                ingest.finish()

    assert store.has(descriptor().digest) is (want_error is None)


def test_writing_past_the_size_is_refused_before_any_byte_lands(
    store: LocalStore,
) -> None:
    with store.open_ingest(descriptor()) as ingest:
        ingest.write(BLOB[:100])
        with pytest.raises(VerificationError, match="more than 17000 bytes"):
            ingest.write(BLOB[100:] + b"!")
        assert ingest.offset == 100


def test_sha512_blobs_are_hashed_with_sha512(store: LocalStore) -> None:
    desc = descriptor(algorithm="sha512")
    store.write_blob(desc, BLOB)

    assert store.path(desc.digest) == store.root / "blobs" / "sha512" / desc.digest.hex
    store.verify(desc.digest)


@pytest.mark.parametrize(
    "cut", [0, 1, 8192, len(BLOB) - 1], ids=lambda n: f"resume after {n} bytes"
)
def test_reopened_ingest_resumes_at_the_end_of_its_data(
    store: LocalStore, cut: int
) -> None:
    with store.open_ingest(descriptor()) as first:
        first.write(BLOB[:cut])

    with store.open_ingest(descriptor()) as second:
        assert second.offset == cut
        second.write(BLOB[cut:])
        second.finish()
        store.commit(second)

    assert store.read(descriptor().digest, len(BLOB)) == BLOB
    assert store.ingest_keys() == []


def test_ingest_for_another_descriptor_starts_over(store: LocalStore) -> None:
    with store.open_ingest(descriptor()) as first:
        first.write(BLOB[:10])
    ref = next((store.ingests).iterdir()) / "ref.json"
    ref.write_text('{"mediaType": "x", "digest": "sha256:' + "0" * 64 + '", "size": 3}')

    with store.open_ingest(descriptor()) as second:
        assert second.offset == 0


def test_ingest_longer_than_the_blob_starts_over(store: LocalStore) -> None:
    with store.open_ingest(descriptor()) as first:
        first.write(BLOB[:10])
    (next(store.ingests.iterdir()) / "data").write_bytes(BLOB + b"extra")

    with store.open_ingest(descriptor()) as second:
        assert second.offset == 0


def test_an_ingest_has_one_writer_at_a_time(store: LocalStore) -> None:
    with (
        store.open_ingest(descriptor()),
        pytest.raises(FailedPrecondition, match="in use"),
    ):
        store.open_ingest(descriptor())


def test_commit_leaves_no_temporary_files(store: LocalStore) -> None:
    store.write_blob(descriptor(), BLOB)

    files = sorted(
        str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file()
    )
    assert files == [f"blobs/sha256/{descriptor().digest.hex}"]


@pytest.mark.parametrize(
    ("max_size", "error"),
    [
        pytest.param(len(BLOB), None, id="a read at exactly the limit succeeds"),
        pytest.param(
            len(BLOB) - 1, InvalidArgument, id="a read over the limit is refused"
        ),
    ],
)
def test_read_is_bounded(
    store: LocalStore, max_size: int, error: type[Exception] | None
) -> None:
    store.write_blob(descriptor(), BLOB)
    if error is None:
        assert store.read(descriptor().digest, max_size) == BLOB
    else:
        with pytest.raises(error):
            store.read(descriptor().digest, max_size)


def test_missing_blob_is_not_found(store: LocalStore) -> None:
    with pytest.raises(NotFound):
        store.read(descriptor().digest, 10)
    assert store.delete(descriptor().digest) is False


def test_walk_and_delete(store: LocalStore) -> None:
    other = b"other"
    store.write_blob(descriptor(), BLOB)
    store.write_blob(descriptor(other), other)

    assert set(store.walk()) == {descriptor().digest, descriptor(other).digest}
    assert store.delete(descriptor().digest) is True
    assert list(store.walk()) == [descriptor(other).digest]


def test_verify_catches_a_blob_changed_on_disk(store: LocalStore) -> None:
    store.write_blob(descriptor(), BLOB)
    store.path(descriptor().digest).write_bytes(BLOB[:-1] + b"?")

    with pytest.raises(VerificationError, match="content hashes to"):
        store.verify(descriptor().digest)


def test_tail_reader_follows_a_growing_ingest(store: LocalStore) -> None:
    got: list[bytes] = []
    with store.open_ingest(descriptor()) as ingest:
        reader = TailReader(ingest)
        thread = threading.Thread(target=lambda: got.append(reader.read()))
        thread.start()
        for start in range(0, len(BLOB), 1000):
            ingest.write(BLOB[start : start + 1000])
        ingest.finish()
        thread.join()
        reader.close()

    assert got == [BLOB]


def test_tail_reader_raises_the_download_error(store: LocalStore) -> None:
    errors: list[Exception] = []
    with store.open_ingest(descriptor()) as ingest:
        reader = TailReader(ingest)

        def read_all() -> None:
            try:
                reader.read()
            except VerificationError as exc:
                errors.append(exc)

        thread = threading.Thread(target=read_all)
        thread.start()
        ingest.write(BLOB[:10])
        ingest.fail(VerificationError("verify blob: broken"))
        thread.join()
        reader.close()

    assert [str(e) for e in errors] == ["verify blob: broken"]
