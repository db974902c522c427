"""User resolution against a rootfs's /etc/passwd and /etc/group."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandpull.agent.users import read_in_root, resolve_user
from sandpull.errors import InvalidArgument
from sandpull.oci.runtime import User

PASSWD = "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n"
GROUP = "root:x:0:\napp:x:1001:\nwheel:x:10:app,other\nvideo:x:44:other\n"


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(PASSWD)
    (tmp_path / "etc" / "group").write_text(GROUP)
    return tmp_path


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param("", User(0, 0, (), "/root"), id="empty is root"),
        pytest.param("app", User(1000, 1001, (10,), "/home/app"),
                     id="a name takes uid gid home and member groups"),
        pytest.param("1000", User(1000, 1001, (10,), "/home/app"),
                     id="a known uid is looked up like its name"),
        pytest.param("777", User(777, 0, (), "/"), id="an unknown uid gets gid 0"),
        pytest.param("app:video", User(1000, 44, (10,), "/home/app"),
                     id="a group name overrides the primary group"),
        pytest.param("app:10", User(1000, 10, (), "/home/app"),
                     id="the primary group is not repeated as supplementary"),
        pytest.param("5:6", User(5, 6, (), "/"), id="uid and gid numbers pass"),
    ],
)  # fmt: skip
def test_resolve_user(rootfs: Path, spec: str, expected: User) -> None:
    assert resolve_user(rootfs, spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param("ghost", "no such user", id="an unknown user name is refused"),
        pytest.param("app:ghost", "no such group", id="an unknown group is refused"),
    ],
)
def test_unknown_names_are_invalid(rootfs: Path, spec: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        resolve_user(rootfs, spec)


def test_C16_absolute_symlink_is_followed_inside_the_rootfs(tmp_path: Path) -> None:
    # Field case C16: an absolute link inside the image means the image's path.
    (tmp_path / "usr" / "lib").mkdir(parents=True)
    (tmp_path / "usr" / "lib" / "passwd").write_text(PASSWD)
    (tmp_path / "etc").mkdir()
    os.symlink("/usr/lib/passwd", tmp_path / "etc" / "passwd")

    assert resolve_user(tmp_path, "app").uid == 1000


def test_symlink_climbing_out_stays_in_the_rootfs(tmp_path: Path) -> None:
    # A host file reached by ../ must never be read: .. stops at the rootfs.
    (tmp_path / "etc").mkdir()
    os.symlink("../../../../../etc/hostname", tmp_path / "etc" / "passwd")

    assert read_in_root(tmp_path, "etc/passwd") == ""


def test_symlink_loop_is_refused(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    os.symlink("/etc/passwd", tmp_path / "etc" / "passwd")

    with pytest.raises(InvalidArgument, match="too many symbolic links"):
        read_in_root(tmp_path, "etc/passwd")


def test_missing_passwd_still_allows_numeric_users(tmp_path: Path) -> None:
    assert resolve_user(tmp_path, "1234:5678") == User(1234, 5678, (), "/")
