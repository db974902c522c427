"""The image store's metadata in one SQLite database (``<root>/meta.db``, WAL).

Tables: ``images`` (name -> manifest, config, platform, top snapshot),
``image_blobs`` (which committed blobs an image uses), ``snapshots`` (chain id
-> snapshot id, parent, size, tree digest, status), ``leases`` and
``lease_resources`` (what a running pull holds against gc), ``pulls`` (bytes
fetched per registry and image). A snapshot row is inserted as ``partial``
before its directory is written and marked ``committed`` last; at most one
committed row exists per chain id.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sandpull.errors import FailedPrecondition, ResourceExhausted

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    name TEXT PRIMARY KEY,
    manifest_digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    config_digest TEXT NOT NULL,
    platform TEXT NOT NULL,
    repo_digest TEXT NOT NULL,
    top_chain_id TEXT,
    size INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS image_blobs (
    name TEXT NOT NULL REFERENCES images(name) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    PRIMARY KEY (name, digest)
);
CREATE TABLE IF NOT EXISTS blobs (
    digest TEXT PRIMARY KEY,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chain_id TEXT NOT NULL,
    parent TEXT,
    size INTEGER NOT NULL DEFAULT 0,
    tree_digest TEXT,
    status TEXT NOT NULL CHECK (status IN ('partial', 'committed')),
    created REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS snapshots_committed
    ON snapshots(chain_id) WHERE status = 'committed';
CREATE TABLE IF NOT EXISTS leases (
    id TEXT PRIMARY KEY,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS lease_resources (
    lease TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('blob', 'snapshot')),
    key TEXT NOT NULL,
    PRIMARY KEY (lease, kind, key)
);
CREATE TABLE IF NOT EXISTS pulls (
    registry TEXT NOT NULL,
    image TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (registry, image)
);
"""


def connect(path: Path) -> sqlite3.Connection:
    """Open (and create) the database; autocommit, so transactions are explicit."""
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout=30000")
        # A schema lost in a crash is simply created again: no wait for the disk.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(SCHEMA)
        db.execute("PRAGMA synchronous=FULL")
    except sqlite3.Error as exc:
        raise FailedPrecondition(f"open image database {path}: {exc}") from exc
    return db


#: One connection is shared by the event loop and worker threads; its write
#: transactions must not interleave.
_WRITE_LOCK = threading.Lock()


@contextmanager
def transaction(
    db: sqlite3.Connection, *, durable: bool = True
) -> Iterator[sqlite3.Connection]:
    """One write transaction, taken up front so readers never block it midway.

    ``durable=False`` skips the wait for the disk at commit: a crash may then
    lose the transaction (never corrupt the database), which suits rows that
    only matter while this process runs, such as leases and partial snapshots.
    The next durable commit flushes it along with its own.
    """
    with _WRITE_LOCK:
        if durable:
            yield from _transaction(db)
            return
        db.execute("PRAGMA synchronous=NORMAL")
        try:
            yield from _transaction(db)
        finally:
            db.execute("PRAGMA synchronous=FULL")


def _transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        if "full" in str(exc):
            raise ResourceExhausted(
                "write image database: no space left on device"
            ) from exc
        raise FailedPrecondition(f"write image database: {exc}") from exc


def now() -> float:
    return time.time()
