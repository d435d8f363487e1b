"""The exceptions Ferry's client raises: one per kind of failure a caller handles differently."""

from __future__ import annotations

from dataclasses import dataclass

import grpc


class FerryError(Exception):
    """Any failure reported by Ferry or on the way to it."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


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

    def __init__(self, message: str, publication_id: str, row_errors: list[RowError]) -> None:
        super().__init__(message, grpc.StatusCode.INVALID_ARGUMENT)
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


def from_rpc_error(error: grpc.RpcError) -> FerryError:
    """The exception for a gRPC error, chosen by status code and, for contracts, by message."""
    code: grpc.StatusCode = error.code()
    message: str = error.details() or str(code)
    if code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("invalid contract:"):
        return InvalidContract(message, code)
    return _BY_CODE.get(code, FerryError)(message, code)
