"""The endpoint table: which handler answers each method and path of the REST port.

MLflow serves every endpoint under both ``/api/…`` and ``/ajax-api/…`` (its web UI uses the
latter); so does this table. Paths of MLflow features that mlgrid does not serve (traces,
scorers, prompts, webhooks, evaluation datasets, the AI gateway, workspaces, …) answer MLflow's
own ``NOT_IMPLEMENTED`` (501), so a client can tell "not here" from "no such endpoint" (404).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote

import mlgrid

from . import artifacts, logged_models, registry, tracking
from .context import JsonEndpoint, RestContext
from .errors import RestError, not_implemented
from .exchange import Exchange

#: First path segments (after ``mlflow/``) of MLflow endpoint families mlgrid does not serve.
NOT_SERVED_FAMILIES = frozenset(
    {
        "traces",
        "unified-traces",
        "get-online-trace-details",
        "datasets",
        "scorers",
        "gateway",
        "prompt-optimization",
        "webhooks",
        "workspaces",
        "prompts",
    }
)
#: Single MLflow endpoints (below ``mlflow/``) that mlgrid does not serve.
NOT_SERVED_PATHS = frozenset({"artifacts/presigned-upload-url"})
_API_PREFIXES = ("/api/", "/ajax-api/")

StreamHandler = Callable[[RestContext, Exchange], None]


def all_json_endpoints() -> list[JsonEndpoint]:
    return [*tracking.ENDPOINTS, *registry.ENDPOINTS, *logged_models.ENDPOINTS]


def _template(path: str) -> re.Pattern[str]:
    """A regex for a path with ``{field}`` segments (one path segment each)."""
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path))
    return re.compile(f"^{pattern}$")


class Router:
    """Finds and runs the handler of a request."""

    def __init__(self, ctx: RestContext, endpoints: list[JsonEndpoint] | None = None) -> None:
        self.ctx = ctx
        self._json: dict[str, dict[str, JsonEndpoint]] = {}
        #: Paths with ``{field}`` segments, tried (in order) when no exact path matches.
        self._templated: dict[str, tuple[re.Pattern[str], dict[str, JsonEndpoint]]] = {}
        for endpoint in endpoints if endpoints is not None else all_json_endpoints():
            for prefix in _API_PREFIXES:
                path = f"{prefix}{endpoint.version}/mlflow/{endpoint.path}"
                if "{" in path:
                    by_method = self._templated.setdefault(path, (_template(path), {}))[1]
                else:
                    by_method = self._json.setdefault(path, {})
                for method in endpoint.methods:
                    by_method[method] = endpoint
        self._plain: dict[str, StreamHandler] = {
            "/health": _health,
            "/version": _version,
            "/get-artifact": artifacts.get_run_artifact,
            "/ajax-api/2.0/mlflow/get-artifact": artifacts.get_run_artifact,
            "/model-versions/get-artifact": artifacts.get_model_version_artifact,
            "/ajax-api/2.0/mlflow/model-versions/get-artifact": (
                artifacts.get_model_version_artifact
            ),
        }

    def _find(self, path: str) -> tuple[dict[str, JsonEndpoint], dict[str, str]] | None:
        """The JSON endpoints of ``path`` by method, and the fields its path carries."""
        by_method = self._json.get(path)
        if by_method is not None:
            return by_method, {}
        for pattern, templated in self._templated.values():
            match = pattern.match(path)
            if match:
                return templated, {k: unquote(v) for k, v in match.groupdict().items()}
        return None

    def serve(self, ex: Exchange) -> None:
        ctx = self.ctx
        found = self._find(ex.path)
        if found is not None:
            by_method, from_path = found
            endpoint = by_method.get(ex.method)
            if endpoint is None:
                allowed = ", ".join(sorted(by_method))
                raise RestError(
                    "BAD_REQUEST",
                    f"{ex.method} is not allowed on {ex.path}; allowed: {allowed}",
                    status=405,
                )
            if ex.method == "GET":
                query = parse_qs(ex.query, keep_blank_values=True)
                query.update({k: [v] for k, v in from_path.items()})
                req = endpoint.spec.read_query(query)
            else:
                data: Any = ex.read_json()
                if from_path and isinstance(data, dict):
                    data.update(from_path)
                req = endpoint.spec.read_json(data)
            ex.send_json(endpoint.handler(ctx, req))
            return
        plain = self._plain.get(ex.path)
        if plain is not None and ex.method in ("GET", "HEAD"):
            plain(ctx, ex)
            return
        for prefix in _API_PREFIXES:
            artifacts_prefix = f"{prefix}2.0/mlflow-artifacts/"
            if ex.path.startswith(artifacts_prefix):
                artifacts.serve(ctx, ex, ex.path[len(artifacts_prefix) :])
                return
        if _is_not_served(ex.path):
            raise not_implemented(ex.method, ex.path)
        raise RestError("ENDPOINT_NOT_FOUND", f"no endpoint at {ex.path[:120]}")


def _is_not_served(path: str) -> bool:
    for prefix in _API_PREFIXES:
        for version in ("2.0", "3.0"):
            head = f"{prefix}{version}/mlflow/"
            if path.startswith(head):
                below = path[len(head) :]
                if version == "3.0" or below in NOT_SERVED_PATHS:
                    return True
                return below.split("/", 1)[0] in NOT_SERVED_FAMILIES
    return False


def _health(ctx: RestContext, ex: Exchange) -> None:
    ex.send(200, b"OK", "text/plain; charset=utf-8")


def _version(ctx: RestContext, ex: Exchange) -> None:
    ex.send(200, mlgrid.__version__.encode(), "text/plain; charset=utf-8")
