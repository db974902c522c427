"""Durable file-system steps: fsync a file or a directory, rename atomically."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (a rename or create in it) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_rename(source: Path, target: Path) -> None:
    """Rename ``source`` onto ``target`` and flush the target's directory."""
    os.replace(source, target)
    fsync_dir(target.parent)
