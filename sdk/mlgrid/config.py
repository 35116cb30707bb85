"""Process-wide settings, MLflow's ``mlflow.config`` names."""

from __future__ import annotations

from mlgrid import environment as env
from mlgrid.tracking_uri import (
    get_registry_uri,
    get_tracking_uri,
    set_registry_uri,
    set_tracking_uri,
)

__all__ = [
    "enable_async_logging",
    "get_registry_uri",
    "get_tracking_uri",
    "set_registry_uri",
    "set_tracking_uri",
]


def enable_async_logging(enable: bool = True) -> None:
    """Makes metric, param and tag logging non-blocking by default (``synchronous=None``)
    in this process and its children; ``synchronous=True`` still forces a blocking call."""
    env.MLGRID_ASYNC_LOGGING.set(enable)
