"""The reference side of the comparison: umoci's rootfs of the catalogue images.

If umoci got a field case wrong, comparing sandpull with it would teach sandpull the
wrong answer; so the field cases' expected values are checked on umoci's rootfs
here, and every catalogue image is checked to unpack at all.
"""

from __future__ import annotations

import hashlib

import pytest

from sandpull.oci import Platform
from tests.support.catalogue import NAMES, Catalogue
from tests.support.registry_server import RegistryServer
from tests.support.trees import Entry, Tree, tree_snapshot
from tests.support.umoci import UmociRootfs
from tests.support.whiteouts import CAP

pytestmark = [pytest.mark.registry, pytest.mark.root]


def _unpacked(
    server: RegistryServer, catalogue: Catalogue, umoci: UmociRootfs, name: str
) -> Tree:
    pushed = catalogue.push_reference(server, name)
    return tree_snapshot(umoci(server, f"{pushed.repo}:{pushed.tag}"))


@pytest.fixture(scope="module")
def whiteouts_tree(
    registry_plain: RegistryServer,
    image_catalogue: Catalogue,
    umoci_rootfs: UmociRootfs,
) -> Tree:
    return _unpacked(registry_plain, image_catalogue, umoci_rootfs, "whiteouts")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


ABSENT = [
    ("a/b", "C01 opaque directory hides the lower a-b"),
    ("a/.wh..wh..opq", "C01 opaque marker never appears"),
    ("bar/.wh..wh.opq", "C02 a misspelled opaque marker never appears"),
    ("foo/old", "C02 opaque marker clears lower foo-old"),
    ("test", "C04 whiting out test and test-test in one layer removes test"),
    ("deleted", "a whited-out directory goes with its content"),
    ("etc/hosts", "a whited-out file goes"),
    ("this-will-be-deleted", "C41 a file whited out by the next layer goes"),
    ("usr/share/doc/curl/.wh..wh..opq", "C07 opaque marker never appears"),
    ("no", "a whiteout of a missing path creates nothing"),
]


@pytest.mark.parametrize(
    "path", [pytest.param(p, id=f"{i} in umoci's rootfs") for p, i in ABSENT]
)
def test_umoci_rootfs_lacks(whiteouts_tree: Tree, path: str) -> None:
    assert path not in whiteouts_tree


def _is(kind: str, **fields: object) -> dict[str, object]:
    return {"type": kind, **fields}


PRESENT: list[tuple[str, dict[str, object], str]] = [
    ("a", _is("dir"), "C01 the opaque directory itself stays"),
    ("foo/new", _is("file", sha256=_sha("C02")), "C02 new content of an opaque dir"),
    ("bar/keep", _is("file"), "C02 a misspelled opaque marker is not opaque"),
    ("root/test", _is("file"), "C06 a root whiteout spares root-test"),
    ("etc/test", _is("file"), "C06 a root whiteout spares etc-test"),
    ("usr/share/doc/curl/X", _is("symlink", target="../new-target"), "C07 new link"),
    ("t1", _is("file", sha256=_sha("456"), link_group=""), "C08 t1 is replaced"),
    ("t2", _is("file", sha256=_sha("123"), link_group="t2"), "C08 t2 keeps 123"),
    ("t3", _is("file", sha256=_sha("123"), link_group="t2"), "C08 t3 keeps 123"),
    (
        "usr/bin/perl5.38.2",
        _is("file", sha256=_sha("perl A"), link_group="usr/bin/perl"),
        "C09 an upper hardlink replaces an existing path",
    ),
    (
        "bin/app.runfiles/_main/app_/app",
        _is("file", link_group="bin/app"),
        "C10 a hardlink without parent entries",
    ),
    (
        "usr/bin/perlthanks",
        _is("file", link_group="usr/bin/perlbug"),
        "C11 an absolute hardlink target is taken inside the rootfs",
    ),
    ("run/app.sock", _is("file"), "C16 var-run to -run resolves inside the rootfs"),
    ("etc/ssl/certs", _is("dir", mode=0o555), "C18 a late directory entry's mode"),
    ("etc/gshadow", _is("file", sha256=_sha("new"), mode=0), "C19 mode 000 replaced"),
    ("opt/ro/new", _is("file"), "C19 a file added below a 0555 directory"),
    ("dev/console", _is("char", rdev=(5, 1), mode=0o600), "C20 a character device"),
    ("run/fifo", _is("fifo"), "C20 a fifo"),
    ("a/c/after-opaque", _is("file"), "C21 C17 layers after empty and padded ones"),
    ("bin/su", _is("file", mode=0o4750, gid=5), "a setuid file replaced upstairs"),
    ("bin/ping", _is("file", xattrs=(("security.capability", CAP),)), "a capability"),
    ("var/lib/sparse.img", _is("file", size=4 << 20), "a sparse file's full size"),
    ("home/user/file", _is("file", uid=1000, gid=1000, mode=0o640), "a user's file"),
]


@pytest.mark.parametrize(
    ("path", "want"),
    [pytest.param(p, w, id=f"{i} in umoci's rootfs") for p, w, i in PRESENT],
)
def test_umoci_rootfs_has(
    whiteouts_tree: Tree, path: str, want: dict[str, object]
) -> None:
    entry: Entry | None = whiteouts_tree.get(path)
    got = {name: getattr(entry, name, None) for name in want}
    assert got == want


def test_umoci_applies_a_repeated_layer_again(
    registry_plain: RegistryServer,
    image_catalogue: Catalogue,
    umoci_rootfs: UmociRootfs,
) -> None:
    tree = _unpacked(registry_plain, image_catalogue, umoci_rootfs, "repeated-layer")
    assert sorted(tree) == [".", "data", "data/a", "data/b"]  # C22


@pytest.mark.parametrize(
    "name", [pytest.param(n, id=f"{n} unpacks with umoci") for n in NAMES]
)
def test_every_catalogue_image_unpacks_with_umoci(
    registry_plain: RegistryServer,
    image_catalogue: Catalogue,
    umoci_rootfs: UmociRootfs,
    name: str,
) -> None:
    tree = _unpacked(registry_plain, image_catalogue, umoci_rootfs, name)
    assert tree["."].type == "dir"
    assert len(tree) > (3000 if name.startswith("debian") else 3)


def test_umoci_takes_the_host_platform_from_the_multiarch_index(
    registry_plain: RegistryServer,
    image_catalogue: Catalogue,
    umoci_rootfs: UmociRootfs,
) -> None:
    tree = _unpacked(registry_plain, image_catalogue, umoci_rootfs, "multiarch")
    assert tree["etc/image"].sha256 == _sha(f"{Platform.host()}\n")  # C25
