"""Typed exceptions, one per error code, shared by the SDK and the services.

Every error crossing a gRPC boundary carries its code as the ``reason`` of a
``google.rpc.ErrorInfo``; :func:`exception_for_code` turns it back into the same class on the
other side. Codes and their gRPC statuses follow MLflow's error codes (REFERENCE.md).
"""

from __future__ import annotations

from typing import ClassVar

import grpc

__all__ = [
    "ERROR_DOMAIN",
    "InternalError",
    "InvalidParameterValue",
    "MlflowException",
    "MlgridException",
    "PermissionDenied",
    "RequestLimitExceeded",
    "ResourceAlreadyExists",
    "ResourceDoesNotExist",
    "TemporarilyUnavailable",
    "Unauthenticated",
    "exception_for_code",
    "exception_for_status",
]

#: ``domain`` of the ErrorInfo the services attach to errors.
ERROR_DOMAIN = "mlgrid.dev"


class MlgridException(Exception):
    """Base of every mlgrid error. ``error_code`` is MLflow's name for the failure."""

    error_code: ClassVar[str] = "INTERNAL_ERROR"
    grpc_status: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.error_code}: {self.message}"


#: MLflow scripts catch ``MlflowException``; it is the same class here.
MlflowException = MlgridException


class InvalidParameterValue(MlgridException):
    """Bad input: a malformed, too long or conflicting value. Nothing was written."""

    error_code = "INVALID_PARAMETER_VALUE"
    grpc_status = grpc.StatusCode.INVALID_ARGUMENT


class ResourceDoesNotExist(MlgridException):
    """The named experiment, run, model, version or file does not exist."""

    error_code = "RESOURCE_DOES_NOT_EXIST"
    grpc_status = grpc.StatusCode.NOT_FOUND


class ResourceAlreadyExists(MlgridException):
    """An entity with that name already exists."""

    error_code = "RESOURCE_ALREADY_EXISTS"
    grpc_status = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(MlgridException):
    """The caller may not do this."""

    error_code = "PERMISSION_DENIED"
    grpc_status = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(MlgridException):
    """The caller is not authenticated."""

    error_code = "UNAUTHENTICATED"
    grpc_status = grpc.StatusCode.UNAUTHENTICATED


class RequestLimitExceeded(MlgridException):
    """Too many requests."""

    error_code = "REQUEST_LIMIT_EXCEEDED"
    grpc_status = grpc.StatusCode.RESOURCE_EXHAUSTED


class TemporarilyUnavailable(MlgridException):
    """A backend is down or overloaded; retrying later may succeed."""

    error_code = "TEMPORARILY_UNAVAILABLE"
    grpc_status = grpc.StatusCode.UNAVAILABLE


class InternalError(MlgridException):
    """An unexpected failure on the server."""

    error_code = "INTERNAL_ERROR"
    grpc_status = grpc.StatusCode.INTERNAL


_BY_CODE: dict[str, type[MlgridException]] = {
    cls.error_code: cls
    for cls in (
        InvalidParameterValue,
        ResourceDoesNotExist,
        ResourceAlreadyExists,
        PermissionDenied,
        Unauthenticated,
        RequestLimitExceeded,
        TemporarilyUnavailable,
        InternalError,
    )
}

_BY_STATUS: dict[grpc.StatusCode, type[MlgridException]] = {
    cls.grpc_status: cls for cls in _BY_CODE.values()
}
# Statuses no mlgrid code produces, but which a gateway, a plugin or the transport can.
_BY_STATUS.update(
    {
        grpc.StatusCode.DEADLINE_EXCEEDED: TemporarilyUnavailable,
        grpc.StatusCode.FAILED_PRECONDITION: InvalidParameterValue,
        grpc.StatusCode.OUT_OF_RANGE: InvalidParameterValue,
        grpc.StatusCode.UNIMPLEMENTED: InternalError,
    }
)


def exception_for_code(code: str) -> type[MlgridException]:
    """The exception class of an MLflow error code (INTERNAL_ERROR's for unknown codes)."""
    return _BY_CODE.get(code, InternalError)


def exception_for_status(status: grpc.StatusCode) -> type[MlgridException]:
    """The exception class for a gRPC status that came without an ErrorInfo."""
    return _BY_STATUS.get(status, InternalError)
