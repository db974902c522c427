from tests.registry.fault_server import fault_server

__all__ = ["fault_server"]
