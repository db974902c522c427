"""The benchmark's images: layer splitting, markers, and the builders that are cheap."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import isal.igzip
import pytest

from bench import catalogue
from tests.support.layers import dir_, file, hardlink, tar_entries

GROUPS = (("usr",), ("etc", "var"))


def _names(blob: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(isal.igzip.decompress(blob))) as archive:
        return [member.name.rstrip("/") for member in archive]


def _member(blob: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(isal.igzip.decompress(blob))) as archive:
        handle = archive.extractfile(name)
        assert handle is not None
        return handle.read()


@pytest.fixture
def rootfs_tar(tmp_path: Path) -> Path:
    entries = [
        dir_("usr/"), dir_("usr/bin/"), file("usr/bin/gzip", "gzip"),
        hardlink("usr/bin/gunzip", "usr/bin/gzip"),
        dir_("etc/"), file("etc/hostname", "box\n"),
        hardlink("etc/zcat", "usr/bin/gzip"),
        dir_("var/"), dir_("root/"), file("root/.profile", "# sh\n"),
        dir_("usrlocal/"),
    ]  # fmt: skip
    path = tmp_path / "rootfs.tar"
    path.write_bytes(tar_entries(entries))
    return path


@pytest.mark.parametrize(
    ("name", "layer"),
    [
        pytest.param("usr/bin/gzip", 0, id="a file under usr goes to the usr layer"),
        pytest.param(
            "etc/hostname", 1, id="a file under etc goes to the etc-var layer"
        ),
        pytest.param("var", 1, id="the var directory itself goes to the etc-var layer"),
        pytest.param("root/.profile", 2, id="anything else goes to the last layer"),
        pytest.param("usrlocal", 2, id="a name that only starts with usr is not usr"),
        pytest.param("etc/zcat", 0, id="a hardlink follows its target's layer"),
        pytest.param(
            "etc/sandpull-bench/demo", 2, id="the marker is in the last layer"
        ),
    ],
)
def test_split_places_each_entry(rootfs_tar: Path, name: str, layer: int) -> None:
    layers = catalogue._split(rootfs_tar, GROUPS, "demo")
    assert len(layers) == 3
    where = [i for i, x in enumerate(layers) if name in _names(x.blob)]
    assert where == [layer]


def test_split_keeps_file_content_and_writes_the_marker(rootfs_tar: Path) -> None:
    layers = catalogue._split(rootfs_tar, GROUPS, "demo")
    assert _member(layers[1].blob, "etc/hostname") == b"box\n"
    marker = _member(layers[2].blob, "etc/sandpull-bench/demo")
    assert marker == b"sandpull bench image demo\n"


@pytest.mark.parametrize(
    ("name", "layers"),
    [
        pytest.param("small", 1, id="small is one layer"),
        pytest.param("layers", catalogue.LAYER_COUNT, id="layers has forty layers"),
    ],
)
def test_builders_put_the_marker_in_the_last_layer(name: str, layers: int) -> None:
    built = catalogue.BUILDERS[name](name)
    assert len(built) == layers
    content = _member(built[-1].blob, f"etc/sandpull-bench/{name}")
    assert content == f"sandpull bench image {name}\n".encode()


def test_small_links_every_applet_to_busybox() -> None:
    (layer,) = catalogue.BUILDERS["small"]("small")
    with tarfile.open(fileobj=io.BytesIO(isal.igzip.decompress(layer.blob))) as tar:
        links = [m for m in tar if m.issym()]
    assert len(links) > 200
    assert {m.linkname for m in links} == {"/bin/busybox"}


def test_split_leaves_out_what_is_under_a_skipped_directory(tmp_path: Path) -> None:
    entries = [
        dir_("var/"), dir_("var/cache/"), dir_("var/cache/apt/"),
        file("var/cache/apt/pkg.deb", "deb"), file("var/cache/keep", "keep"),
    ]  # fmt: skip
    tarball = tmp_path / "rootfs.tar"
    tarball.write_bytes(tar_entries(entries))
    layers = catalogue._split(tarball, GROUPS, "demo", skip=("var/cache/apt",))
    names = _names(layers[1].blob)
    assert "var/cache/apt" in names
    assert "var/cache/apt/pkg.deb" not in names
    assert "var/cache/keep" in names
