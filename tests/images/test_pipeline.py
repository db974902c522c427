"""The pull pipeline's own logic, over an in-process registry and applier."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
from pathlib import Path

import pytest

from sandpull.errors import (
    NotFound,
    ResourceExhausted,
    UnsupportedError,
    VerificationError,
)
from sandpull.images import ImageService
from sandpull.oci import Compression, Descriptor, Platform, mediatype
from tests.images.fakes import FakeApplier, FakeRegistryData
from tests.support.images import IndexEntry, attestation_for, build_image, build_index
from tests.support.layers import Layer, file, make_layer, tar_entries, whiteout

REF = "registry.test/app:1"
AMD64 = Platform("linux", "amd64")


def layer(*entries: object, media_type: str = mediatype.OCI_LAYER_GZIP) -> Layer:
    compression = mediatype.layer_compression(media_type) or Compression.GZIP
    return make_layer(tar_entries(list(entries)), media_type, compression)  # type: ignore[arg-type]


BASE = layer(
    file("etc/base", "base\n"), file("big", random.Random(1).randbytes(50_000))
)
MIDDLE = layer(file("etc/middle", "middle\n"))
TOP = layer(file("etc/top", "top\n"))


def files_of(service: ImageService, ref: str) -> set[str]:
    dirs = service.snapshot_dirs(service.get(ref))
    return {str(p.relative_to(d)) for d in dirs for p in d.rglob("*") if p.is_file()}


def debris(root: Path) -> list[str]:
    partial = [p.name for p in (root / "snapshots").glob("*.partial")]
    ingest = [p.name for p in (root / "ingest").iterdir()]
    return partial + ingest


async def test_pull_commits_image_snapshots_and_blobs(
    fake_service: ImageService, registry_data: FakeRegistryData
) -> None:
    image = build_image([BASE, MIDDLE, TOP])
    registry_data.add("1", image)

    pulled = await fake_service.pull(REF, AMD64)

    assert pulled.image_id == image.config_digest
    assert pulled.manifest_digest == image.digest
    assert pulled.repo_digest == f"registry.test/app@{image.digest}"
    assert pulled.bytes_fetched == len(image.manifest) + len(image.config) + sum(
        x.size for x in image.layers
    )
    assert files_of(fake_service, REF) == {"etc/base", "big", "etc/middle", "etc/top"}
    assert fake_service.check().clean
    assert debris(fake_service.root) == []
    assert fake_service.store.has(image.digest) and fake_service.store.has(
        image.config_digest
    )
    assert not fake_service.store.has(BASE.digest)


async def test_second_pull_fetches_no_layer(
    fake_service: ImageService, registry_data: FakeRegistryData
) -> None:
    registry_data.add("1", build_image([BASE, TOP]))
    await fake_service.pull(REF, AMD64)
    registry_data.sent.clear()

    await fake_service.pull(REF, AMD64)

    assert sum(registry_data.sent.values()) == 0


async def test_C22_repeated_layer_is_fetched_once_and_applied_at_each_position(
    fake_service: ImageService, registry_data: FakeRegistryData, applier: FakeApplier
) -> None:
    deleting = layer(whiteout("etc/base"))
    registry_data.add("1", build_image([BASE, deleting, BASE]))

    await fake_service.pull(REF, AMD64)

    assert registry_data.sent[BASE.digest] == BASE.size
    assert applier.applied == [BASE.digest, deleting.digest, BASE.digest]
    assert len(fake_service.snapshot_dirs(fake_service.get(REF))) == 3


async def test_concurrent_pulls_share_each_download(
    fake_service: ImageService, registry_data: FakeRegistryData, applier: FakeApplier
) -> None:
    registry_data.add("1", build_image([BASE, MIDDLE, TOP]))

    first, second = await asyncio.gather(
        fake_service.pull(REF, AMD64), fake_service.pull(REF, AMD64)
    )

    assert dict(registry_data.sent) == {x.digest: x.size for x in (BASE, MIDDLE, TOP)}
    assert sorted(applier.applied) == sorted([BASE.digest, MIDDLE.digest, TOP.digest])
    assert first.image_id == second.image_id


async def test_interrupted_download_resumes_from_the_ingest(
    fake_service: ImageService, registry_data: FakeRegistryData
) -> None:
    registry_data.add("1", build_image([BASE]))
    with fake_service.store.open_ingest(
        Descriptor(BASE.media_type, BASE.digest, BASE.size)
    ) as ingest:
        ingest.write(BASE.blob[:1000])

    await fake_service.pull(REF, AMD64)

    assert registry_data.sent[BASE.digest] == BASE.size - 1000


async def test_corrupt_blob_leaves_no_snapshot_and_no_ingest(
    fake_service: ImageService, registry_data: FakeRegistryData
) -> None:
    registry_data.add("1", build_image([BASE, TOP]))
    registry_data.blobs[TOP.digest] = TOP.blob[:-1] + bytes([TOP.blob[-1] ^ 1])

    with pytest.raises(VerificationError, match=f"verify blob {TOP.digest.short}"):
        await fake_service.pull(REF, AMD64)

    assert debris(fake_service.root) == []
    with pytest.raises(NotFound):
        fake_service.get(REF)
    assert len(fake_service.snapshots.committed()) == 1  # the base stays for a retry


async def test_no_space_is_reported_and_cleaned_up(
    fake_service: ImageService, registry_data: FakeRegistryData, applier: FakeApplier
) -> None:
    registry_data.add("1", build_image([BASE, TOP]))
    applier.fail_at = TOP.digest
    applier.error = ResourceExhausted("apply layer: no space left on device")

    with pytest.raises(ResourceExhausted, match="no space"):
        await fake_service.pull(REF, AMD64)

    assert debris(fake_service.root) == []
    with pytest.raises(NotFound):
        fake_service.get(REF)


@pytest.mark.parametrize(
    ("media_type", "message"),
    [
        pytest.param(
            mediatype.DOCKER_FOREIGN_LAYER,
            "foreign layers are not supported",
            id="C29 a foreign layer is refused before any download",
        ),
        pytest.param(
            "application/vnd.in-toto+json",
            "want a tar layer",
            id="C25 an in-toto layer is refused before any download",
        ),
    ],
)
async def test_unusable_layers_are_refused_early(
    fake_service: ImageService,
    registry_data: FakeRegistryData,
    media_type: str,
    message: str,
) -> None:
    odd = Layer(b"{}", media_type, BASE.diff_id)
    registry_data.add("1", build_image([BASE, odd]))

    with pytest.raises(UnsupportedError, match=message):
        await fake_service.pull(REF, AMD64)

    assert sum(registry_data.sent.values()) == 0


async def test_C23_docker_zstd_layer_in_a_docker_manifest_is_pulled(
    fake_service: ImageService, registry_data: FakeRegistryData
) -> None:
    zstd = layer(file("z", "zstd\n"), media_type=mediatype.DOCKER_LAYER_ZSTD)
    registry_data.add("1", build_image([zstd], media_type=mediatype.DOCKER_MANIFEST))

    await fake_service.pull(REF, AMD64)

    assert files_of(fake_service, REF) == {"z"}


ARM64 = Platform("linux", "arm64")
ARM64_V8 = Platform("linux", "arm64", "v8")


@pytest.mark.parametrize(
    ("index_type", "entries", "host", "want"),
    [
        pytest.param(
            mediatype.OCI_INDEX,
            [AMD64, ARM64, Platform("linux", "arm")],
            ARM64_V8,
            1,
            id="C24 an arm64 entry without variant serves an arm64/v8 host",
        ),
        pytest.param(
            mediatype.DOCKER_MANIFEST_LIST,
            [AMD64, ARM64_V8],
            ARM64_V8,
            1,
            id="C27 a Docker list of OCI manifests is followed by platform",
        ),
    ],
)
async def test_index_selects_the_platform(
    fake_service: ImageService,
    registry_data: FakeRegistryData,
    index_type: str,
    entries: list[Platform],
    host: Platform,
    want: int,
) -> None:
    images = [build_image([layer(file("arch", str(p)))], platform=p) for p in entries]
    index = build_index(
        [IndexEntry(i, p) for i, p in zip(images, entries, strict=True)], index_type
    )
    registry_data.add("1", index)

    pulled = await fake_service.pull(REF, host)

    assert pulled.manifest_digest == images[want].digest
    assert pulled.repo_digest == f"registry.test/app@{index.digest}"


async def test_C25_attestation_first_in_the_index_is_never_chosen(
    fake_service: ImageService, registry_data: FakeRegistryData
) -> None:
    image = build_image([BASE])
    index = build_index([attestation_for(image, b"{}"), IndexEntry(image, AMD64)])
    registry_data.add("1", index)

    pulled = await fake_service.pull(REF, AMD64)

    assert pulled.manifest_digest == image.digest


async def test_nested_index_is_followed(
    fake_service: ImageService, registry_data: FakeRegistryData
) -> None:
    image = build_image([BASE])
    inner = build_index([IndexEntry(image, AMD64)])
    registry_data.add("inner", inner)
    entry = {
        "mediaType": inner.media_type,
        "digest": str(inner.digest),
        "size": len(inner.data),
    }
    outer_doc = json.dumps({"schemaVersion": 2, "manifests": [entry]}).encode()
    registry_data.manifests["1"] = (outer_doc, mediatype.OCI_INDEX)

    pulled = await fake_service.pull(REF, AMD64)

    assert pulled.manifest_digest == image.digest


async def test_remove_then_gc_frees_everything(
    fake_service: ImageService, registry_data: FakeRegistryData
) -> None:
    registry_data.add("1", build_image([BASE, TOP]))
    await fake_service.pull(REF, AMD64)

    fake_service.remove(REF)
    report = fake_service.gc()

    assert (report.snapshots_removed, report.blobs_removed) == (2, 2)
    assert fake_service.fs_usage().used_bytes == 0
    assert list((fake_service.root / "snapshots").iterdir()) == []


async def test_gc_keeps_layers_shared_with_another_image(
    fake_service: ImageService, registry_data: FakeRegistryData
) -> None:
    registry_data.add("1", build_image([BASE, TOP]))
    registry_data.add("2", build_image([BASE, MIDDLE]))
    await fake_service.pull(REF, AMD64)
    await fake_service.pull("registry.test/app:2", AMD64)

    fake_service.remove(REF)
    report = fake_service.gc()

    assert report.snapshots_removed == 1
    assert files_of(fake_service, "registry.test/app:2") == {
        "etc/base",
        "big",
        "etc/middle",
    }


async def test_check_reports_a_changed_snapshot(
    fake_service: ImageService, registry_data: FakeRegistryData
) -> None:
    registry_data.add("1", build_image([BASE]))
    await fake_service.pull(REF, AMD64)
    top = fake_service.snapshot_dirs(fake_service.get(REF))[0]
    (top / "etc" / "base").write_text("changed\n")

    report = fake_service.check()

    assert [p.split(":")[0] for p in report.problems] == ["verify snapshot 1 (sha256"]


def test_startup_removes_partial_snapshots(tmp_path: Path) -> None:
    service = ImageService(tmp_path, registry_factory=None, apply_layer=FakeApplier())
    prepared = service.snapshots.prepare(BASE.diff_id, None)
    (prepared.fs / "half-written").write_text("x")
    (tmp_path / "snapshots" / "99").mkdir()
    service.close()

    reopened = ImageService(tmp_path, apply_layer=FakeApplier())

    assert list((tmp_path / "snapshots").iterdir()) == []
    assert reopened.snapshots.get(BASE.diff_id) is None
    reopened.close()


@pytest.mark.root
@pytest.mark.parametrize(
    "layers",
    [
        pytest.param([BASE], id="a single-layer image mounts with an empty lower"),
        pytest.param([BASE, TOP], id="a two-layer image mounts its snapshots"),
    ],
)
async def test_mount_shows_the_image(
    fake_service: ImageService,
    registry_data: FakeRegistryData,
    tmp_path: Path,
    layers: list[Layer],
) -> None:
    registry_data.add("1", build_image(layers))
    await fake_service.pull(REF, AMD64)
    target = tmp_path / "mnt"
    target.mkdir()

    fake_service.mount(REF, target)
    try:
        names = sorted(str(p.relative_to(target)) for p in target.rglob("*"))
    finally:
        subprocess.run(["umount", str(target)], check=True)

    want = {"etc", "etc/base", "big"} | ({"etc/top"} if len(layers) == 2 else set())
    assert names == sorted(want)
