"""Turns a failed gRPC call back into the typed exception the server raised."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from mlgrid.exceptions import MlgridException, exception_for_code, exception_for_status
from mlgrid.protocol import STATUS_DETAILS_KEY

_STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}


def status_code(value: int) -> grpc.StatusCode:
    """The gRPC status code numbered ``value`` on the wire (UNKNOWN for a number gRPC lacks)."""
    return _STATUS_CODES.get(value, grpc.StatusCode.UNKNOWN)


class EndedCall(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    """A call that ended with ``code``, ``details`` and trailing metadata, presented as gRPC
    presents a failed call (an RpcError that is also a Call), so everything that reads one (the
    SDK's error mapping, grpc_status) reads this alike: calls made without a socket (embedded
    mode's in-process channel) or carried on a call pipeline."""

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str,
        trailing: tuple[tuple[str, Any], ...] = (),
    ) -> None:
        super().__init__(f"<{type(self).__name__} {code.name}: {details}>")
        self._code = code
        self._details = details
        self._trailing = trailing

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> Any:
        return self._trailing

    def initial_metadata(self) -> Any:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> Any:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Any) -> bool:
        return False


def from_backend(trailing: Iterable[tuple[str, Any]] | None) -> bool:
    """True when trailing metadata carries a status with details: the error came from an
    mlgrid service, not from a connection that failed on the way."""
    return any(key == STATUS_DETAILS_KEY for key, _ in trailing or ())


def from_rpc_error(err: grpc.RpcError) -> MlgridException:
    """The typed exception for ``err``: by ErrorInfo reason when present, else by status code."""
    if not isinstance(err, grpc.Call):
        return exception_for_status(grpc.StatusCode.UNKNOWN)(str(err))
    message = err.details() or err.code().name
    try:
        status = rpc_status.from_call(err)
    except ValueError:
        status = None
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                exc = exception_for_code(info.reason)(message)
                exc.__cause__ = err
                return exc
    exc = exception_for_status(err.code())(message)
    exc.__cause__ = err
    return exc
