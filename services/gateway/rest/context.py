"""What every REST handler works with, and how an endpoint is declared."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .backends import Backends
from .fields import Spec
from .uris import ArtifactUris


@dataclass(frozen=True)
class RestContext:
    """The backends, the artifact URI mapping and the deadline of backend calls."""

    backends: Backends
    uris: ArtifactUris
    #: Seconds a backend call may take before the client is told the backend is unavailable.
    timeout: float = 60.0


#: A JSON endpoint: (context, the request's fields) -> the response object.
JsonHandler = Callable[[RestContext, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class JsonEndpoint:
    """One of MLflow's JSON endpoints: its RPC name, HTTP methods, path below /api/2.0/mlflow/."""

    rpc: str
    methods: tuple[str, ...]
    path: str
    spec: Spec
    handler: JsonHandler
    #: The API version in the path ("2.0", or "3.0" for MLflow 3's endpoints).
    version: str = "2.0"


def run_id_of(req: dict[str, Any]) -> str:
    """``run_id``, else MLflow's deprecated ``run_uuid`` (old clients send only that)."""
    return req.get("run_id") or req.get("run_uuid") or ""
