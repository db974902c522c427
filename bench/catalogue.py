"""The benchmark's images: built deterministically, pushed to the local registry.

Each image carries a marker file, ``etc/sandpull-bench/<name>``, in its last layer,
so a run can prove that a tool produced the rootfs. Each image also has a ``warm``
tag: the same layers plus one small layer on top, for pulls that find the base
layers already present. Layers are built with the test support builders
(:mod:`tests.support.layers`, :mod:`tests.support.images`), so the benchmark and
the tests write tar streams the same way.
"""

from __future__ import annotations

import io
import random
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from sandpull.oci import Compression, Digest, mediatype
from tests.support import rootfs
from tests.support.images import Image, RunConfig, build_image, push_image
from tests.support.layers import (
    Entry,
    Layer,
    dir_,
    file,
    make_layer,
    symlink,
    tar_entries,
)
from tests.support.registry_server import RegistryServer

MARKER_DIR = "etc/sandpull-bench"
BUSYBOX = Path("/bin/busybox")
#: Packages on top of minbase for ``large``: python3 and a C/C++ toolchain.
LARGE_PACKAGES = "python3,python3-dev,python3-venv,gcc,g++,make,cmake,libc6-dev,git"
#: Left out of ``large``, as an image build cleans them: downloaded packages and
#: package lists (about 200 MB of the root filesystem).
APT_CACHES = ("var/cache/apt/archives", "var/lib/apt/lists")
LARGE_TARBALL = f"debian-{rootfs.SUITE}-large.tar"
#: ``blob``: this many files of random bytes, 1 GiB in all.
BLOB_FILES = 8
BLOB_FILE_SIZE = 128 << 20
LAYER_COUNT = 40


@dataclass(frozen=True)
class BenchImage:
    """A pushed benchmark image: where it lives and what proves it was unpacked."""

    name: str
    host: str
    repo: str
    layers: tuple[Digest, ...]
    layer_sizes: tuple[int, ...]
    compression: Compression

    @property
    def ref(self) -> str:
        return f"{self.host}/{self.repo}:latest"

    @property
    def warm_ref(self) -> str:
        return f"{self.host}/{self.repo}:warm"

    @property
    def marker(self) -> str:
        """The marker's path relative to the rootfs."""
        return f"{MARKER_DIR}/{self.name}"

    @property
    def warm_marker(self) -> str:
        return f"{MARKER_DIR}/{self.name}-warm"

    def marker_content(self, warm: bool = False) -> bytes:
        return f"sandpull bench image {self.name}{'-warm' if warm else ''}\n".encode()

    def blob_url(self, digest: Digest) -> str:
        return f"http://{self.host}/v2/{self.repo}/blobs/{digest}"


def publish(server: RegistryServer, name: str) -> BenchImage:
    """Build image ``name`` and push it as ``bench/<name>:latest`` and ``:warm``."""
    builder = BUILDERS.get(name)
    if builder is None:
        raise ValueError(f"build image {name!r}: unknown, want one of {NAMES}")
    image = build_image(builder(name), run=RunConfig(cmd=("/bin/sh",)))
    repo = f"bench/{name}"
    push_image(server, repo, "latest", image)
    warm = build_image([*image.layers, _warm_layer(name)])
    push_image(server, repo, "warm", warm)
    return _describe(server.host, repo, name, image)


def _describe(host: str, repo: str, name: str, image: Image) -> BenchImage:
    return BenchImage(
        name=name,
        host=host,
        repo=repo,
        layers=tuple(layer.digest for layer in image.layers),
        layer_sizes=tuple(layer.size for layer in image.layers),
        compression=Compression.GZIP,
    )


def _marker(name: str) -> list[Entry]:
    content = f"sandpull bench image {name}\n"
    return [dir_("etc/"), dir_(f"{MARKER_DIR}/"), file(f"{MARKER_DIR}/{name}", content)]


def _gzip_layer(entries: list[Entry]) -> Layer:
    return make_layer(tar_entries(entries), mediatype.OCI_LAYER_GZIP, Compression.GZIP)


def _warm_layer(name: str) -> Layer:
    return _gzip_layer(_marker(f"{name}-warm"))


# --- the images ---------------------------------------------------------------------


def _small(name: str) -> list[Layer]:
    """A static busybox and its applet symlinks: one layer, a few hundred entries."""
    applets = subprocess.run(
        [str(BUSYBOX), "--list-full"], capture_output=True, text=True, check=True
    ).stdout.split()
    dirs = sorted({"bin", "sbin", "usr", "usr/bin", "usr/sbin", "tmp"})
    entries = [dir_(f"{d}/") for d in dirs]
    entries.append(file("bin/busybox", BUSYBOX.read_bytes(), mode=0o755))
    entries += [
        symlink(a, "/bin/busybox") for a in sorted(applets) if a != "bin/busybox"
    ]
    return [_gzip_layer(entries + _marker(name))]


def _debian(name: str) -> list[Layer]:
    """Debian minbase in three layers: ``/usr``; ``/etc`` and ``/var``; the rest."""
    groups = (("usr",), ("etc", "var"))
    return _split(rootfs.debian_rootfs_tar(), groups, name)


def _large(name: str) -> list[Layer]:
    """Debian with python3 and a compiler toolchain, about 620 MiB, in five layers."""
    groups = (("usr/lib/gcc", "usr/libexec"), ("usr/lib",), ("usr",), ("etc", "var"))
    return _split(large_rootfs_tar(), groups, name, skip=APT_CACHES)


def _blob(name: str) -> list[Layer]:
    """One layer of 1 GiB of random bytes in a handful of files: throughput."""
    rng = random.Random(f"sandpull-bench-{name}")
    entries = [dir_("data/")]
    entries += [
        file(f"data/part-{i}.bin", rng.randbytes(BLOB_FILE_SIZE))
        for i in range(BLOB_FILES)
    ]
    return [_gzip_layer(entries + _marker(name))]


def _layers(name: str) -> list[Layer]:
    """Forty small layers, a few files each: per-layer overhead."""
    rng = random.Random(f"sandpull-bench-{name}")
    layers = []
    for index in range(LAYER_COUNT):
        entries = [dir_("data/"), dir_(f"data/{index:02d}/")]
        entries += [
            file(f"data/{index:02d}/f{j}", rng.randbytes(2048).hex()) for j in range(8)
        ]
        if index == LAYER_COUNT - 1:
            entries += _marker(name)
        layers.append(_gzip_layer(entries))
    return layers


BUILDERS: dict[str, Callable[[str], list[Layer]]] = {
    "small": _small,
    "debian": _debian,
    "large": _large,
    "blob": _blob,
    "layers": _layers,
}
NAMES = tuple(BUILDERS)


# --- splitting a root filesystem tarball into layers --------------------------------


def _split(
    tarball: Path,
    groups: tuple[tuple[str, ...], ...],
    name: str,
    skip: tuple[str, ...] = (),
) -> list[Layer]:
    """Layers of ``tarball`` by path prefix; the marker goes into the last one.

    A member goes to the first group with a matching prefix, the rest to a final
    layer; a hardlink goes to the layer holding its target. What lies under a
    ``skip`` directory is left out (the directory itself stays).
    """
    outputs = [io.BytesIO() for _ in range(len(groups) + 1)]
    placed: dict[str, int] = {}
    with ExitStack() as stack:
        writers = [stack.enter_context(_tar_writer(o)) for o in outputs]
        source = stack.enter_context(tarfile.open(tarball))
        for member in source:
            if _under(member.name, skip):
                continue
            index = _group_of(member, groups, placed)
            placed[member.name] = index
            data = source.extractfile(member) if member.isreg() else None
            writers[index].addfile(member, data)
    tars = [o.getvalue() for o in outputs]
    tars[-1] = _append(tars[-1], _marker(name))
    return [make_layer(t, mediatype.OCI_LAYER_GZIP, Compression.GZIP) for t in tars]


def _under(name: str, directories: tuple[str, ...]) -> bool:
    path = name.removeprefix("./")
    return any(path.startswith(d + "/") for d in directories)


def _tar_writer(out: io.BytesIO) -> tarfile.TarFile:
    return tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT)


def _group_of(
    member: tarfile.TarInfo, groups: tuple[tuple[str, ...], ...], placed: dict[str, int]
) -> int:
    if member.islnk() and member.linkname in placed:
        return placed[member.linkname]
    path = member.name.removeprefix("./")
    for index, prefixes in enumerate(groups):
        if any(path == p or path.startswith(p + "/") for p in prefixes):
            return index
    return len(groups)


def _append(tar: bytes, entries: list[Entry]) -> bytes:
    """``tar`` with ``entries`` added before its end-of-archive marker."""
    extra = tar_entries(entries)
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(tar)) as first,
        tarfile.open(fileobj=io.BytesIO(extra)) as second,
        tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as writer,
    ):
        for source in (first, second):
            for member in source:
                data = source.extractfile(member) if member.isreg() else None
                writer.addfile(member, data)
    return out.getvalue()


# --- the large root filesystem ------------------------------------------------------


def large_rootfs_tar(cache_dir: Path = rootfs.CACHE_DIR) -> Path:
    """Debian minbase plus :data:`LARGE_PACKAGES`, cached like the minbase tarball."""
    tarball = cache_dir / LARGE_TARBALL
    if tarball.is_file():
        return tarball
    cache_dir.mkdir(parents=True, exist_ok=True)
    with rootfs._locked(cache_dir / ".lock"):
        if not tarball.is_file():
            _build_large(tarball)
    return tarball


def _build_large(tarball: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="build-large-", dir=tarball.parent))
    try:
        target = work / "rootfs"
        command = [
            "debootstrap", "--variant=minbase", f"--include={LARGE_PACKAGES}",
            rootfs.SUITE, str(target), rootfs.MIRROR,
        ]  # fmt: skip
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=rootfs.BUILD_TIMEOUT_SECONDS,
        )
        if done.returncode != 0:
            tail = (done.stdout + done.stderr)[-2000:]
            raise RuntimeError(f"debootstrap large: exit {done.returncode}\n{tail}")
        partial = work / "rootfs.tar"
        rootfs._tar(target, partial)
        partial.rename(tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
