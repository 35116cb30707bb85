"""MLflow's REST API on the gateway: a translator at the edge over the same gRPC contracts.

``start_rest_server`` serves it beside a gateway: MLflow's JSON endpoints under
``/api/2.0/mlflow/…`` and ``/ajax-api/2.0/mlflow/…``, the ``mlflow-artifacts`` proxy, ``/health``
and ``/version``. Modules: ``endpoints`` (the table), ``tracking`` and ``registry`` (one handler
per endpoint), ``artifacts`` (the streamed proxy), ``fields`` and ``entities`` (JSON ↔ proto),
``uris`` (``mlflow-artifacts:/``), ``errors``, ``exchange`` and ``server`` (HTTP).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

from ..channels import ChannelPool
from ..routing import RoutingTable
from .backends import Backends
from .context import RestContext
from .endpoints import Router
from .server import RestServer
from .uris import ArtifactUris

#: The REST port's default: the port `mlflow server` listens on, so MLflow clients configured
#: for a local MLflow server (http://127.0.0.1:5000) work unchanged.
DEFAULT_REST_PORT = 5000


def start_rest_server(
    table: RoutingTable,
    pool: ChannelPool,
    retry_discovery: Callable[[], bool],
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_REST_PORT,
    artifacts_root: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> RestServer:
    """Serves MLflow's REST API on ``host:port`` over the gateway's routes and channels.

    ``artifacts_root`` is the deployment's default artifact root: locations below it are shown
    to clients as ``mlflow-artifacts:/…`` and served by the proxy; None serves no proxy root.
    ``tls`` (a server context) serves HTTPS instead of HTTP.
    """
    ctx = RestContext(Backends(table, pool, retry_discovery), ArtifactUris(artifacts_root))
    server = RestServer(Router(ctx), host=host, port=port, tls=tls)
    server.start()
    return server


__all__ = ["DEFAULT_REST_PORT", "RestServer", "start_rest_server"]
