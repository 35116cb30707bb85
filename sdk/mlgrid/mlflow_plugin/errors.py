"""mlgrid's typed errors, raised again as the ``MlflowException`` MLflow's callers catch.

mlgrid's codes are MLflow's names (``RESOURCE_DOES_NOT_EXIST``, ...), so the translation keeps
the code and the message; MLflow code that branches on ``error_code`` behaves as against its own
server.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from mlflow.exceptions import MlflowException
from mlflow.protos import databricks_pb2

from mlgrid.exceptions import MlgridException

F = TypeVar("F", bound=Callable[..., Any])


def to_mlflow_exception(error: MlgridException) -> MlflowException:
    """The MlflowException with ``error``'s code and message (INTERNAL_ERROR for unknown codes)."""
    code = error.error_code
    if code not in databricks_pb2.ErrorCode.keys():  # noqa: SIM118 - an enum wrapper, not a dict
        code = "INTERNAL_ERROR"
    return MlflowException(error.message, error_code=databricks_pb2.ErrorCode.Value(code))


def mlflow_errors(method: F) -> F:
    """Makes ``method`` raise MlflowException where mlgrid's SDK raised its own errors."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except MlgridException as error:
            raise to_mlflow_exception(error) from error

    return cast(F, wrapper)
