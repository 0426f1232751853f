"""Exceptions: the PEP 249 (DB-API 2.0) hierarchy, and under it one class per
error code of the protocol (docs/PROTOCOL.md, "Errors"), so code can catch
``ohm.Overloaded`` or a DB-API tool ``DatabaseError`` alike.

Every error the node sent carries ``code`` (the wire code), ``message`` (the
node's text) and ``leader`` (where the leader is, for ``not_leader``; else
None). ``maybe_applied`` says whether the request may have taken effect.
"""

from __future__ import annotations


class Warning(Exception):  # noqa: A001 - the name PEP 249 requires
    """PEP 249: important warnings. Ohm sends none; here for the API."""


class Error(Exception):
    """PEP 249's base class of every error this package raises."""

    #: The protocol's error code, or a client-side one (``connection``,
    #: ``config``, ``certificate``, ``protocol``).
    code: str = "client"

    def __init__(self, message: str, *, code: str | None = None, leader: str | None = None,
                 maybe_applied: bool = False):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.leader = leader
        self.maybe_applied = maybe_applied

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InterfaceError(Error):
    """PEP 249: the client was used wrongly or could not reach the node."""


class DatabaseError(Error):
    """PEP 249: an error the node reported."""


class DataError(DatabaseError):
    """PEP 249: a value could not be processed (too large, out of range)."""


class OperationalError(DatabaseError):
    """PEP 249: the node could not do it now (overloaded, unavailable,
    quota, timeout, authentication); usually not the caller's fault."""


class IntegrityError(DatabaseError):
    """PEP 249: a relational integrity check failed. The node reports
    constraint violations as ``sql`` errors (``SqlError``), which derive
    from this class's sibling DatabaseError; nothing raises it directly."""


class InternalError(DatabaseError):
    """PEP 249: the node hit a bug (``internal``), or sent a code this client
    does not know."""


class ProgrammingError(DatabaseError):
    """PEP 249: the request was wrong (unknown procedure, bad arguments,
    a refused module, a write to the wrong partition, a forbidden op)."""


class NotSupportedError(DatabaseError):
    """PEP 249: the node does not support what was asked."""


# -- client-side errors ----------------------------------------------------

class ConfigError(InterfaceError):
    """The connection string, arguments, environment or data directory do
    not say how to connect (the message says what is missing and where)."""

    code = "config"


class CertificateError(InterfaceError):
    """The node's certificate is not the one pinned or not signed by the CA."""

    code = "certificate"


class ConnectionLost(OperationalError):
    """The connection closed before the answer came: the request's outcome is
    unknown (``maybe_applied`` is True for anything that could write)."""

    code = "connection"


class ProtocolError(InterfaceError):
    """The node sent something this client cannot read."""

    code = "protocol"


# -- one class per protocol error code -------------------------------------

class BadRequest(InterfaceError):
    code = "bad_request"


class Unauthenticated(OperationalError):
    code = "unauthenticated"


class AuthFailed(OperationalError):
    code = "auth_failed"


class Forbidden(ProgrammingError):
    code = "forbidden"


class UnknownProcedure(ProgrammingError):
    code = "unknown_procedure"


class BadArguments(ProgrammingError):
    code = "bad_arguments"


class Aborted(DatabaseError):
    code = "aborted"


class SqlError(DatabaseError):
    code = "sql"


class LimitExceeded(DatabaseError):
    code = "limit"


class Trap(DatabaseError):
    code = "trap"


class DeployError(ProgrammingError):
    code = "deploy"


class TooLarge(DataError):
    code = "too_large"


class Overloaded(OperationalError):
    code = "overloaded"


class NotSupported(NotSupportedError):
    code = "not_supported"


class WrongPartition(ProgrammingError):
    code = "wrong_partition"


class Timeout(OperationalError):
    code = "timeout"


class QuotaExceeded(OperationalError):
    code = "quota_exceeded"


class AlreadyApplied(DatabaseError):
    code = "already_applied"


class NotLeader(OperationalError):
    code = "not_leader"


class Unavailable(OperationalError):
    code = "unavailable"


class DiskFull(OperationalError):
    code = "disk_full"


class NodeInternalError(InternalError):
    code = "internal"


__all__ = [
    "Warning", "Error", "InterfaceError", "DatabaseError", "DataError", "OperationalError",
    "IntegrityError", "InternalError", "ProgrammingError", "NotSupportedError",
    "ConfigError", "CertificateError", "ConnectionLost", "ProtocolError",
    "BadRequest", "Unauthenticated", "AuthFailed", "Forbidden", "UnknownProcedure",
    "BadArguments", "Aborted", "SqlError", "LimitExceeded", "Trap", "DeployError", "TooLarge",
    "Overloaded", "NotSupported", "WrongPartition", "Timeout", "QuotaExceeded",
    "AlreadyApplied", "NotLeader", "Unavailable", "DiskFull", "NodeInternalError",
]

BY_CODE: dict[str, type[Error]] = {
    cls.code: cls
    for cls in (
        BadRequest, Unauthenticated, AuthFailed, Forbidden, UnknownProcedure, BadArguments,
        Aborted, SqlError, LimitExceeded, Trap, DeployError, TooLarge, Overloaded,
        NotSupported, WrongPartition, Timeout, QuotaExceeded, AlreadyApplied, NotLeader,
        Unavailable, DiskFull, NodeInternalError,
    )
}

#: The text of an ``unavailable`` answer whose request may have been applied.
MAYBE_APPLIED = "may or may not have taken effect"


def from_wire(error: object) -> Error:
    """The exception for a response's ``error`` map. An unknown code is
    treated as ``internal`` (the protocol says so) but keeps its code."""
    if not isinstance(error, dict):
        return ProtocolError(f"an error that is not a map: {error!r}")
    code = error.get("code")
    message = error.get("message")
    if not isinstance(code, str) or not isinstance(message, str):
        return ProtocolError(f"an error without a code and a message: {error!r}")
    leader = error.get("leader")
    cls = BY_CODE.get(code, NodeInternalError)
    return cls(
        message,
        code=code,
        leader=leader if isinstance(leader, str) else None,
        maybe_applied=(code == "unavailable" and MAYBE_APPLIED in message),
    )
