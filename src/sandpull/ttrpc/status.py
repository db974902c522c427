"""The one mapping between sandpull errors and ttrpc (gRPC) statuses.

The server turns a raised :class:`~sandpull.errors.SandpullError` into a status
with the error's ``code``; the client turns a status back into the error class
for that code (``sandpull.errors.error_for_code``). Codes without a class of
their own (CANCELLED, INTERNAL, OUT_OF_RANGE, ABORTED) come back as a plain
``SandpullError`` whose ``code`` still carries the code received.
"""

from __future__ import annotations

from sandpull.api import ttrpc_pb2
from sandpull.errors import Code, SandpullError, error_for_code


def status_for_error(exc: BaseException) -> ttrpc_pb2.Status:
    """The status sent for an exception raised by a handler."""
    if isinstance(exc, SandpullError):
        return make_status(exc.code, str(exc))
    return make_status(Code.UNKNOWN, str(exc) or type(exc).__name__)


def make_status(code: int, message: str) -> ttrpc_pb2.Status:
    return ttrpc_pb2.Status(code=int(code), message=message)


def error_for_status(status: ttrpc_pb2.Status) -> SandpullError:
    """The sandpull error a client raises for a non-OK status."""
    error = error_for_code(status.code, status.message)
    if error.code != status.code:
        try:
            error.code = Code(status.code)
        except ValueError:
            error.code = Code.UNKNOWN
    return error
