"""Leases: what a running pull holds so that ``gc`` in any process leaves it alone.

A lease expires on its own (a pull killed with SIGKILL never releases it), so
its resources become collectable an hour later at most. A lease only matters
while its pull runs, so its rows are written without waiting for the disk.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterable

from sandpull.images.db import now, transaction

LEASE_SECONDS = 3600.0


class Leases:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def create(self, seconds: float = LEASE_SECONDS) -> str:
        lease = secrets.token_hex(8)
        with transaction(self._db, durable=False) as db:
            db.execute("INSERT INTO leases VALUES (?, ?)", (lease, now() + seconds))
        return lease

    def add(self, lease: str, kind: str, key: str) -> None:
        self.add_all(lease, [(kind, key)])

    def add_all(self, lease: str, resources: Iterable[tuple[str, str]]) -> None:
        """Hold every ``(kind, key)`` in one transaction."""
        with transaction(self._db, durable=False) as db:
            db.executemany(
                "INSERT OR IGNORE INTO lease_resources VALUES (?, ?, ?)",
                [(lease, kind, key) for kind, key in resources],
            )

    def release(self, lease: str) -> None:
        with transaction(self._db, durable=False) as db:
            db.execute("DELETE FROM leases WHERE id = ?", (lease,))

    def held(self, kind: str) -> set[str]:
        """Keys of ``kind`` held by a lease that has not expired."""
        rows = self._db.execute(
            "SELECT key FROM lease_resources JOIN leases ON leases.id = lease "
            "WHERE kind = ? AND expires > ?",
            (kind, now()),
        )
        return {row["key"] for row in rows}

    def expire(self) -> None:
        with transaction(self._db, durable=False) as db:
            db.execute("DELETE FROM leases WHERE expires <= ?", (now(),))
