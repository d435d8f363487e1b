"""The exceptions Ferry's client raises: one per kind of failure a caller handles differently.

Each carries the server's stable ``reason`` (``google.rpc.ErrorInfo``, listed in ferry.proto)
and its ``metadata``; the class follows from the reason, never from the message, which is for
people and may change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

import grpc
import google.rpc.error_details_pb2 as error_details_pb2
import google.rpc.status_pb2 as status_pb2

DOMAIN = "ferry"


class FerryError(Exception):
    """Any failure reported by Ferry or on the way to it."""

    def __init__(
        self,
        message: str,
        code: grpc.StatusCode | None = None,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        field_violations: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        #: The stable reason, such as ``DATASET_NOT_FOUND``; None when the error did not come
        #: from Ferry (a transport failure).
        self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})
        #: Request fields that were wrong, by field name, with what is wrong with each.
        self.field_violations: dict[str, str] = dict(field_violations or {})


class Unauthenticated(FerryError):
    """No token, or a token Ferry does not accept (unknown, revoked, expired, forged)."""


class PermissionDenied(FerryError):
    """The caller is known but the policy does not allow this call."""


class NotFound(FerryError):
    """An unknown dataset, view, publication, grant, or a missing source object."""


class InvalidArgument(FerryError):
    """A malformed request: bad date, bad URI, unknown column, and so on."""


class InvalidContract(InvalidArgument):
    """The dataset contract itself is invalid."""


class NameTaken(InvalidContract):
    """A dataset or view name that another contract already uses."""


class IncompatibleChange(FerryError):
    """A contract change that would break consumers, or a call that needs another state first."""


class Unavailable(FerryError):
    """The server or the source could not be reached; retrying later may help."""


@dataclass(frozen=True)
class RowError:
    """One row the contract refused: 1-based line in the source, column, reason."""

    line: int
    column: str
    reason: str


class PublishRejected(InvalidArgument):
    """The source's rows do not match the contract; the previous partition is unchanged."""

    def __init__(
        self, failure: FerryError, publication_id: str, row_errors: list[RowError]
    ) -> None:
        super().__init__(
            failure.message, grpc.StatusCode.INVALID_ARGUMENT, failure.reason, failure.metadata
        )
        self.publication_id = publication_id
        self.row_errors = row_errors


_BY_CODE: dict[grpc.StatusCode, type[FerryError]] = {
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.FAILED_PRECONDITION: IncompatibleChange,
    grpc.StatusCode.ALREADY_EXISTS: IncompatibleChange,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
}

# Reasons whose class is narrower than their code's.
_BY_REASON: dict[str, type[FerryError]] = {
    "CONTRACT_INVALID": InvalidContract,
    "NAME_TAKEN": NameTaken,
    "INCOMPATIBLE_CHANGE": IncompatibleChange,
}


@dataclass(frozen=True)
class _Details:
    reason: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    field_violations: dict[str, str] = field(default_factory=dict)


def _details(error: grpc.RpcError) -> _Details:
    """The ErrorInfo and BadRequest details from the ``grpc-status-details-bin`` trailer."""
    call = cast(grpc.Call, error)
    for key, value in call.trailing_metadata() or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        details = _Details()
        for detail in status.details:
            # Unpack answers False for a detail of another type.
            info = error_details_pb2.ErrorInfo()
            bad = error_details_pb2.BadRequest()
            if detail.Unpack(info) and info.domain == DOMAIN:
                details = _Details(info.reason, dict(info.metadata), details.field_violations)
            elif detail.Unpack(bad):
                violations = {v.field: v.description for v in bad.field_violations}
                details = _Details(details.reason, details.metadata, violations)
        return details
    return _Details()


def from_rpc_error(error: grpc.RpcError) -> FerryError:
    """The exception for a gRPC error: by Ferry's reason, else (transport errors) by code."""
    code: grpc.StatusCode = error.code()
    message: str = error.details() or str(code)
    details = _details(error)
    kind = _BY_REASON.get(details.reason or "") or _BY_CODE.get(code, FerryError)
    return kind(message, code, details.reason, details.metadata, details.field_violations)
