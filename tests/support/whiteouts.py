"""The ``whiteouts`` and ``repeated-layer`` test images: layer changes whose result
is defined by the image spec, field cases included.

Only cases with exactly one correct result are here, because the images are checked
against umoci's rootfs; cases where several results are acceptable (C03's implicit
empty directory) or where the layer must be refused belong to the applier's tests.
"""

from __future__ import annotations

from sandpull.oci import Compression, mediatype
from tests.support.images import Image, build_image
from tests.support.layers import (
    Entry,
    Layer,
    char,
    dir_,
    fifo,
    file,
    hardlink,
    make_layer,
    opaque,
    sparse,
    symlink,
    tar_entries,
    whiteout,
)

# A version 2 file capability: cap_net_raw (bit 13) permitted and effective.
CAP = bytes.fromhex("0100000200200000000000000000000000000000")
EMPTY_TAR = bytes(1024)


def _layer(entries: list[Entry], padding: int = 0) -> Layer:
    tar = tar_entries(entries) + bytes(padding)
    return make_layer(tar, mediatype.OCI_LAYER_GZIP, Compression.GZIP)


def _base() -> list[Entry]:
    return [
        dir_("a/"), dir_("a/b/"), file("a/b/foo", "C01"),
        dir_("foo/"), file("foo/old", "C02"),
        dir_("bar/"), file("bar/keep", "C02"),
        file("t2", "123"),
        dir_("usr/"), dir_("usr/bin/"),
        file("usr/bin/perl", "perl A", mode=0o755),
        file("usr/bin/perl5.38.2", "perl B", mode=0o755),
        file("usr/bin/perlbug", "perlbug", mode=0o755),
        hardlink("usr/bin/perlthanks", "/usr/bin/perlbug"),
        dir_("test/"), file("test/test", "C04"),
        dir_("root/", mode=0o700), file("root/test", "C06"),
        dir_("etc/"), file("etc/test", "C06"),
        file("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
        file("etc/hosts", "127.0.0.1 localhost\n"),
        file("etc/gshadow", "old", mode=0o000),
        dir_("opt/ro/", mode=0o555), file("opt/ro/old", "ro"),
        dir_("usr/share/doc/curl/"), symlink("usr/share/doc/curl/X", "../old-target"),
        dir_("run/"), symlink("var/run", "/run"),
        dir_("dev/"), char("dev/null", 1, 3), char("dev/console", 5, 1, mode=0o600),
        fifo("run/fifo"),
        dir_("bin/"), file("bin/su", "setuid", mode=0o4755),
        file("bin/wall", "setgid", mode=0o2755, gid=5),
        file("bin/ping", "ping", mode=0o755, xattrs=(("security.capability", CAP),)),
        file("bin/tagged", "x", xattrs=(("user.sandpull", b"tagged"),)),
        dir_("tmp/", mode=0o1777),
        dir_("deleted/"), file("deleted/inner", "gone later"),
        file("bin/app.repo_mapping", "C10"), file("bin/app", "app", mode=0o755),
        hardlink("bin/app.runfiles/_repo_mapping", "bin/app.repo_mapping"),
        hardlink("bin/app.runfiles/_main/app_/app", "bin/app"),
        file("etc/ssl/certs/ca.pem", "C18"), dir_("etc/ssl/"),
        dir_("etc/ssl/certs/", mode=0o555),
        sparse("var/lib/sparse.img", 4 << 20, [(0, b"head"), (3 << 20, b"middle")]),
        file("home/user/file", "owned", uid=1000, gid=1000, mode=0o640),
    ]  # fmt: skip


def _changes() -> list[Entry]:
    return [
        dir_("a/"), opaque("a/"),
        dir_("foo/"), opaque("foo/"), file("foo/new", "C02"),
        whiteout("bar/.wh.opq"),  # C02: a misspelled opaque marker
        hardlink("t1", "t2"), hardlink("t3", "t2"),
        hardlink("usr/bin/perl5.38.2", "usr/bin/perl"),
        whiteout("test"), whiteout("test/test"),
        whiteout("deleted"), whiteout("etc/hosts"),
        file("etc/gshadow", "new", mode=0o000),
        file("opt/ro/new", "C19"),
        dir_("usr/share/doc/curl/"), opaque("usr/share/doc/curl/"),
        symlink("usr/share/doc/curl/X", "../new-target"),
        file("var/run/app.sock", "C16"),
        file("this-will-be-deleted", "C41"),
        file("bin/su", "setuid replaced", mode=0o4750, gid=5),
    ]  # fmt: skip


def _last() -> list[Entry]:
    return [
        file("t1", "456"),
        whiteout("this-will-be-deleted"),
        whiteout("no/such/path"),
        dir_("a/c/"),
        file("a/c/after-opaque", "new"),
    ]


def image() -> Image:
    """Three change layers over a base, an empty layer (C21) and a layer with
    zero padding after the tar end marker (C17)."""
    layers = [
        _layer(_base()),
        _layer(_changes()),
        make_layer(EMPTY_TAR, mediatype.OCI_LAYER_GZIP, Compression.GZIP),
        _layer(_last(), padding=10 * 1024),
    ]
    return build_image(layers)


def repeated_layer_image() -> Image:
    """Layers [A, B, A] (C22): B deletes a file that the second A brings back."""
    a = _layer([dir_("data/"), file("data/a", "from A")])
    b = _layer([whiteout("data/a"), file("data/b", "from B")])
    return build_image([a, b, a])
