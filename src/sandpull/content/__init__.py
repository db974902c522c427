"""Content-addressed blob store: verified, resumable ingest and atomic commit."""

from sandpull.content.ingest import Ingest
from sandpull.content.store import ContentStore, LocalStore
from sandpull.content.tail import TailReader

__all__ = ["ContentStore", "Ingest", "LocalStore", "TailReader"]
