"""The one exception hierarchy of sandpull.

Every error sandpull raises is a :class:`SandpullError`, in one of a few categories
that map one-to-one onto gRPC status codes (and so onto ttrpc and the CRI)::

    SandpullError                    UNKNOWN
    ├── InvalidArgument              INVALID_ARGUMENT   bad reference, bad option
    │   └── UnsupportedError         UNIMPLEMENTED      schema 1, foreign layers
    ├── NotFound                     NOT_FOUND          image, blob, manifest absent
    ├── AlreadyExists                ALREADY_EXISTS
    ├── FailedPrecondition           FAILED_PRECONDITION store or sandbox state
    ├── VerificationError            DATA_LOSS          digest, size or diff_id mismatch
    │   └── HostileEntryError        DATA_LOSS          a tar entry that would escape
    ├── Unauthenticated              UNAUTHENTICATED    registry refused credentials
    ├── PermissionDenied             PERMISSION_DENIED  blocked registry, access denied
    ├── ResourceExhausted            RESOURCE_EXHAUSTED no space, rate limited
    ├── DeadlineExceeded             DEADLINE_EXCEEDED  no progress, RPC deadline
    └── Unavailable                  UNAVAILABLE        connection refused, 5xx

Foreign exceptions (``OSError``, ``aiohttp`` errors, ``tarfile`` errors, protobuf
decode errors) are translated at the package boundary with ``raise ... from exc`` so
the cause is kept. Messages are lowercase, name the step and the object, say what was
expected, and never contain a credential.
"""

from __future__ import annotations

import enum
import errno


class Code(enum.IntEnum):
    """gRPC status codes (google.rpc.Code)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class SandpullError(Exception):
    """Base of every sandpull error; ``code`` is its gRPC status code."""

    code = Code.UNKNOWN


class InvalidArgument(SandpullError):
    code = Code.INVALID_ARGUMENT


class UnsupportedError(InvalidArgument):
    """Valid input that sandpull does not handle (schema 1, foreign layers)."""

    code = Code.UNIMPLEMENTED


class NotFound(SandpullError):
    code = Code.NOT_FOUND


class AlreadyExists(SandpullError):
    code = Code.ALREADY_EXISTS


class FailedPrecondition(SandpullError):
    code = Code.FAILED_PRECONDITION


class VerificationError(SandpullError):
    """Content did not match its digest, size or diff_id."""

    code = Code.DATA_LOSS


class HostileEntryError(VerificationError):
    """A layer entry that would escape the snapshot or is malformed."""


class Unauthenticated(SandpullError):
    code = Code.UNAUTHENTICATED


class PermissionDenied(SandpullError):
    code = Code.PERMISSION_DENIED


class ResourceExhausted(SandpullError):
    code = Code.RESOURCE_EXHAUSTED


class DeadlineExceeded(SandpullError):
    code = Code.DEADLINE_EXCEEDED


class Unavailable(SandpullError):
    code = Code.UNAVAILABLE


_BY_CODE: dict[Code, type[SandpullError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        UnsupportedError,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        VerificationError,
        Unauthenticated,
        PermissionDenied,
        ResourceExhausted,
        DeadlineExceeded,
        Unavailable,
    )
}


def error_for_code(code: int, message: str) -> SandpullError:
    """The sandpull error for a gRPC status code received over the wire."""
    try:
        cls = _BY_CODE.get(Code(code), SandpullError)
    except ValueError:
        cls = SandpullError
    return cls(message)


def from_os_error(step: str, exc: OSError) -> SandpullError:
    """Translate an ``OSError`` raised during ``step`` into a sandpull error."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ResourceExhausted(f"{step}: no space left on device")
    if exc.errno == errno.ENOENT:
        return NotFound(f"{step}: {reason}")
    if exc.errno == errno.EEXIST:
        return AlreadyExists(f"{step}: {reason}")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return PermissionDenied(f"{step}: {reason}")
    return SandpullError(f"{step}: {reason}")
