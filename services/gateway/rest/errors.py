"""MLflow's error bodies and HTTP statuses for the REST edge.

Every failure leaves as ``{"error_code": <MLflow's code>, "message": <text>}`` with the HTTP
status MLflow gives that code (REFERENCE.md, "Error codes"). Failures of the backends arrive as
gRPC errors carrying mlgrid's ErrorInfo; :func:`from_rpc_error` turns them back into the same
code through the SDK's one mapping (``mlgrid._rpc_errors``), so the REST edge adds no table of
its own for them.
"""

from __future__ import annotations

import json

import grpc

from mlgrid._rpc_errors import from_rpc_error

#: HTTP status of each MLflow error code, as MLflow's server answers them.
HTTP_STATUS: dict[str, int] = {
    "INVALID_PARAMETER_VALUE": 400,
    "BAD_REQUEST": 400,
    "MALFORMED_REQUEST": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "REQUEST_LIMIT_EXCEEDED": 429,
    "TEMPORARILY_UNAVAILABLE": 503,
    "INTERNAL_ERROR": 500,
    "NOT_IMPLEMENTED": 501,
}

#: Longest rendering of a client's value that an error message repeats.
MAX_SHOWN_CHARS = 120


class RestError(Exception):
    """A failed request: MLflow's error code, a message, and (rarely) a status of its own."""

    def __init__(self, error_code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self.status = status if status is not None else HTTP_STATUS.get(error_code, 500)

    def body(self) -> bytes:
        return json.dumps({"error_code": self.error_code, "message": self.message}).encode()


def invalid(message: str) -> RestError:
    return RestError("INVALID_PARAMETER_VALUE", message)


def shown(value: object) -> str:
    """A client's value as an error message repeats it: JSON, cut to a bounded length."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > MAX_SHOWN_CHARS:
        text = text[:MAX_SHOWN_CHARS] + f"… ({len(text)} characters)"
    return text


def from_rpc(err: grpc.RpcError) -> RestError:
    """The REST error for a failed backend call (its ErrorInfo reason is MLflow's code)."""
    exc = from_rpc_error(err)
    return RestError(exc.error_code, exc.message)


def not_implemented(method: str, path: str) -> RestError:
    """MLflow's answer for an endpoint the server does not serve."""
    return RestError(
        "NOT_IMPLEMENTED",
        f"{method} {path[:MAX_SHOWN_CHARS]} is an MLflow endpoint that mlgrid does not serve "
        "(see docs/mlflow-endpoints.md for the endpoints it serves)",
    )
