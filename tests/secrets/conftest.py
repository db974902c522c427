"""The fault proxy and store fixtures, shared with tests/faults."""

from tests.faults.conftest import fault_server, open_store, start_proxy

__all__ = ["fault_server", "open_store", "start_proxy"]
