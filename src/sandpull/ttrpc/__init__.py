"""The ttrpc wire protocol (ttrpc 1.1, as containerd 1.6 speaks it), on asyncio.

:class:`Server` serves registered services; :class:`Client` calls them. Errors
cross the wire as gRPC status codes through :mod:`sandpull.ttrpc.status`.
"""

from sandpull.ttrpc.client import Client
from sandpull.ttrpc.frame import MAX_MESSAGE_SIZE, Frame, FrameHeader, MessageType
from sandpull.ttrpc.server import Context, Handler, Method, Server
from sandpull.ttrpc.status import error_for_status, status_for_error

__all__ = [
    "MAX_MESSAGE_SIZE",
    "Client",
    "Context",
    "Frame",
    "FrameHeader",
    "Handler",
    "MessageType",
    "Method",
    "Server",
    "error_for_status",
    "status_for_error",
]
