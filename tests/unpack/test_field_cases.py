"""Field cases C01–C23 and C41: each layer stack gives the case's merged tree.

Every case is checked twice: through a real overlayfs mount of the snapshots and
through an independent Python merge.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from sandpull.errors import HostileEntryError
from tests.unpack.conftest import Stack
from tests.unpack.tarbuild import Spec, info
from tests.unpack.trees import expand, overlay_tree, python_tree

Layers = Sequence[Sequence[Spec]]

CASES = [
    pytest.param(
        [["a/", "a/b/", "a/b/foo"], ["a/", "a/.wh..wh..opq"]],
        ["a/"],
        [],
        id="C01 an opaque marker hides the lower contents of its directory",
    ),
    pytest.param(
        [["foo/old"], ["foo/", "foo/.wh..wh..opq", "foo/new"]],
        ["foo/", "foo/new"],
        [],
        id="C02 a directory made opaque keeps the same layer's new file",
    ),
    pytest.param(
        [["foo/old"], ["foo/.wh..wh.opq"]],
        ["foo/", "foo/old"],
        [],
        id="C02 a misspelled opaque marker is a whiteout of .wh.opq only",
    ),
    pytest.param(
        [
            ["root/dirA/dirB/fileA", "root/dirA/fileB"],
            ["root/.wh.dirA"],
            [
                "root/dirA/dirB/.wh.fileA",
                "/",
                "root/",
                "root/dirA/",
                "root/dirA/fileB=new",
            ],
        ],
        ["root/", "root/dirA/", "root/dirA/fileB=new"],
        ["root/dirA/dirB/"],
        id="C03 a whiteout under a directory deleted below is a no-op",
    ),
    pytest.param(
        [["test/", "test/test"], [".wh.test", "test/.wh.test"]],
        [],
        [],
        id="C04 a whiteout below a path the same layer whited out is accepted",
    ),
    pytest.param(
        [["test/", "test/test"], ["test/.wh.test", ".wh.test"]],
        [],
        [],
        id="C04 the child whiteout first and the parent whiteout second hide both",
    ),
    pytest.param(
        [["root/test", "etc/test"], [".wh.test"]],
        ["root/", "root/test", "etc/", "etc/test"],
        [],
        id="C06 a root whiteout hides only the root's own name",
    ),
    pytest.param(
        [
            ["usr/share/doc/curl/X -> ../old"],
            [
                "usr/share/doc/curl/",
                "usr/share/doc/curl/.wh..wh..opq",
                "usr/share/doc/curl/X -> ../new",
            ],
        ],
        [
            "usr/",
            "usr/share/",
            "usr/share/doc/",
            "usr/share/doc/curl/",
            "usr/share/doc/curl/X -> ../new",
        ],
        [],
        id="C07 an opaque directory takes a new symlink of the same name",
    ),
    pytest.param(
        [["t2=123"], ["t1 => t2", "t3 => t2"], ["t1=456"]],
        ["t1=456", "t2=123", "t3=123"],
        [],
        id="C08 replacing a hardlink alias does not write into the shared inode",
    ),
    pytest.param(
        [
            ["usr/bin/perl=A", "usr/bin/perl5.38.2=B"],
            ["usr/bin/perl5.38.2 => usr/bin/perl"],
        ],
        ["usr/", "usr/bin/", "usr/bin/perl=A", "usr/bin/perl5.38.2=A"],
        [],
        id="C09 a hardlink replaces an existing lower path",
    ),
    pytest.param(
        [
            [
                "bin/app.repo_mapping",
                "bin/app",
                "bin/app.runfiles/_main/main.go",
                "bin/app.runfiles/_repo_mapping => bin/app.repo_mapping",
                "bin/app.runfiles/_main/app_/app => bin/app",
            ]
        ],
        [
            "bin/",
            "bin/app.repo_mapping",
            "bin/app",
            "bin/app.runfiles/",
            "bin/app.runfiles/_main/",
            "bin/app.runfiles/_main/main.go",
            "bin/app.runfiles/_repo_mapping=bin/app.repo_mapping",
            "bin/app.runfiles/_main/app_/",
            "bin/app.runfiles/_main/app_/app=bin/app",
        ],
        [],
        id="C10 hardlinks get implicit parent directories",
    ),
    pytest.param(
        [["usr/bin/perlbug", "usr/bin/perlthanks => /usr/bin/perlbug"]],
        ["usr/", "usr/bin/", "usr/bin/perlbug", "usr/bin/perlthanks=usr/bin/perlbug"],
        [],
        id="C11 an absolute hardlink target is taken from the root",
    ),
    pytest.param(
        [["etc -> /host/etc"], ["etc/pwned"], ["etc/.wh.passwd"]],
        ["etc -> /host/etc", "host/", "host/etc/", "host/etc/pwned=etc/pwned"],
        [],
        id="C13 a lower absolute symlink is followed inside the root",
    ),
    pytest.param(
        [["etc -> /host/etc", "host/etc/passwd"], ["etc/.wh.passwd"]],
        ["etc -> /host/etc", "host/", "host/etc/"],
        [],
        id="C13 a whiteout through a lower symlink acts inside the root",
    ),
    pytest.param(
        [["x -> /tmp", "x/pwn"]],
        ["x -> /tmp", "tmp/", "tmp/pwn=x/pwn"],
        [],
        id="C14 a file through a same-layer absolute symlink lands inside the root",
    ),
    pytest.param(
        [["x -> ../../..", "x/pwn"]],
        ["x -> ../../..", "pwn=x/pwn"],
        [],
        id="C14 a climbing symlink is clamped at the root",
    ),
    pytest.param(
        [["moo -> /tmp/moo", "moo=plain"]],
        ["moo=plain"],
        [],
        id="C14 a file replaces a symlink of the same name instead of writing through",
    ),
    pytest.param(
        [["/etc/foo"]],
        ["etc/", "etc/foo=/etc/foo"],
        [],
        id="C15 an absolute entry name is taken from the root",
    ),
    pytest.param(
        [["run/", "var/run -> /run"], ["var/run/app.sock"]],
        ["run/", "var/", "var/run -> /run", "run/app.sock=var/run/app.sock"],
        [],
        id="C16 an absolute symlink in the image is followed without a false reject",
    ),
    pytest.param(
        [
            [
                "etc/ssl/certs/ca.pem",
                "etc/ssl/",
                (info("etc/ssl/certs", tarfile.DIRTYPE, mode=0o555), b""),
            ]
        ],
        ["etc/", "etc/ssl/", "etc/ssl/certs/", "etc/ssl/certs/ca.pem"],
        [],
        id="C18 a file listed before its directories",
    ),
    pytest.param(
        [
            [
                (info("etc/gshadow", mode=0o000), b"old"),
                (info("opt/ro", tarfile.DIRTYPE, mode=0o555), b""),
            ],
            ["etc/gshadow=new", "opt/ro/new"],
        ],
        ["etc/", "etc/gshadow=new", "opt/", "opt/ro/", "opt/ro/new"],
        [],
        id="C19 a mode 000 file and a 0555 directory below are replaced and filled",
    ),
    pytest.param(
        [["f=1"], [".wh.f"], ["f=1"]],
        ["f=1"],
        [],
        id="C22 the same layer applied again re-adds what a layer between deleted",
    ),
    pytest.param(
        [["base"], ["this-will-be-deleted"], [".wh.this-will-be-deleted"]],
        ["base"],
        [],
        id="C41 a whiteout is evaluated against the fully applied lower stack",
    ),
]


@pytest.mark.parametrize("merge", ["overlay mount", "python merge"])
@pytest.mark.parametrize(("layers", "expected", "optional"), CASES)
def test_field_case_merged_tree(
    stack: Stack,
    tmp_path: Path,
    canary: Path,
    merge: str,
    layers: Layers,
    expected: list[str],
    optional: list[str],
) -> None:
    stack.apply_all(layers)

    if merge == "overlay mount":
        got = overlay_tree(stack.snapshots, tmp_path / "merged")
    else:
        got = python_tree(stack.snapshots)

    assert got - set(optional) == expand(expected)
    for snapshot in stack.snapshots:
        assert not [p for p in snapshot.rglob(".wh.*")], "a marker file was written"


def test_C09_hardlink_names_share_one_inode(stack: Stack) -> None:
    stack.apply_all(
        [
            ["usr/bin/perl=A", "usr/bin/perl5.38.2=B"],
            ["usr/bin/perl5.38.2 => usr/bin/perl"],
        ]
    )

    top = stack.snapshots[-1] / "usr/bin"
    assert os.lstat(top / "perl").st_ino == os.lstat(top / "perl5.38.2").st_ino
    assert (stack.snapshots[0] / "usr/bin/perl5.38.2").read_text() == "B"


def test_C18_directory_mode_is_applied_after_its_children(stack: Stack) -> None:
    certs = (info("etc/ssl/certs", tarfile.DIRTYPE, mode=0o555), b"")
    stack.apply(["etc/ssl/certs/ca.pem", "etc/ssl/", certs])

    st = os.lstat(stack.snapshots[0] / "etc/ssl/certs")
    assert (st.st_mode & 0o7777, st.st_mtime) == (0o555, 1_700_000_000)


def test_C19_lower_snapshot_keeps_its_old_inode(stack: Stack) -> None:
    stack.apply([(info("etc/gshadow", mode=0o000), b"old")])
    stack.apply(["etc/gshadow=new"])

    assert (stack.snapshots[0] / "etc/gshadow").read_bytes() == b"old"
    assert os.lstat(stack.snapshots[1] / "etc/gshadow").st_mode & 0o7777 == 0o644


@pytest.mark.parametrize(
    "bare",
    [
        pytest.param("etc/.wh.", id="C05 a bare whiteout in a directory is rejected"),
        pytest.param(".wh.", id="C05 a bare whiteout at the root is rejected"),
        pytest.param("etc/.wh..", id="C05 a whiteout of dot is rejected"),
        pytest.param("etc/.wh...", id="C05 a whiteout of dot-dot is rejected"),
    ],
)
def test_C05_bare_whiteout_rejects_the_layer(
    stack: Stack, canary: Path, bare: str
) -> None:
    stack.apply(["etc/passwd", "etc/hosts"])

    with pytest.raises(HostileEntryError, match=r"sha256:[0-9a-f]{12}.*\.wh\."):
        stack.apply([(info(bare), b"")])

    assert (stack.snapshots[0] / "etc/passwd").exists()
