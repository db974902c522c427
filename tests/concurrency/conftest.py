"""The fault proxy and store fixtures, shared with tests/faults."""

from tests.faults.conftest import open_store, start_proxy

__all__ = ["open_store", "start_proxy"]
