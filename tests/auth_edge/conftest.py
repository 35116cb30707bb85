"""A gateway with TLS (or without) in front of real services whose calls are recorded.

``edge_stack(tls=..., rest=...)`` starts tracking and artifacts on port 0 behind a gateway with
tunnels; a server interceptor on each service records the metadata every call arrives with, so a
test can see which credentials reached the backend (through the gateway port, a tunnel or the
REST port).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from mlgrid import environment as env
from mlgrid.transport import close_all
from mlgrid_services.common.app import ServiceApp, create_service_app
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.server import RunningServer, start_server
from mlgrid_services.gateway.app import Gateway, start_gateway
from mlgrid_services.gateway.tls import TlsSettings
from tests.auth_edge.keys import CertificateAuthority, Issued, make_ca

#: Every variable that sends credentials or sets TLS, in both spellings: unset for each test.
CLIENT_VARIABLES = [
    env.MLGRID_TRACKING_TOKEN,
    env.MLGRID_TRACKING_USERNAME,
    env.MLGRID_TRACKING_PASSWORD,
    env.MLGRID_TRACKING_SERVER_CERT_PATH,
    env.MLGRID_TRACKING_CLIENT_CERT_PATH,
    env.MLGRID_TRACKING_CLIENT_KEY_PATH,
    env.MLGRID_STORE_URI,
    env.MLGRID_GATEWAY_TUNNELS,
]


@pytest.fixture(autouse=True)
def clean_client_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for variable in CLIENT_VARIABLES:
        for name in variable.names:
            monkeypatch.delenv(name, raising=False)
    yield
    close_all()  # transports read the environment when built: none outlives its test


class MetadataRecorder(grpc.ServerInterceptor):
    """Records (method, metadata) of every call a server receives."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        with self._lock:
            self.calls.append((details.method, dict(details.invocation_metadata)))
        return continuation(details)

    def authorizations(self, method_suffix: str = "") -> list[str | None]:
        with self._lock:
            return [
                metadata.get("authorization")
                for method, metadata in self.calls
                if method.endswith(method_suffix)
            ]

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()


@dataclass
class EdgeStack:
    gateway: Gateway
    recorder: MetadataRecorder
    servers: list[RunningServer] = field(default_factory=list)
    apps: list[ServiceApp] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.gateway.port}"

    def stop(self) -> None:
        self.gateway.stop(grace=0.5)
        for server in self.servers:
            server.stop(grace=0.5)
        for app in self.apps:
            app.close()


@contextmanager
def edge_stack(
    tmp_path: Path, tls: TlsSettings | None = None, rest: bool = False
) -> Iterator[EdgeStack]:
    artifact_root = (tmp_path / "artifacts").resolve().as_uri()
    gateway = start_gateway(
        tunnel_port=0,
        tls=tls,
        rest_port=0 if rest else None,
        rest_artifacts_root=artifact_root if rest else None,
    )
    stack = EdgeStack(gateway, MetadataRecorder())
    config = ServiceConfig(
        backend_store_uri=f"sqlite:///{tmp_path / 'mlgrid.db'}",
        default_artifact_root=artifact_root,
        gateway_target=f"127.0.0.1:{gateway.port}",
    )
    try:
        for name in ("tracking", "artifacts"):
            app = create_service_app(name, config)
            stack.apps.append(app)
            server = start_server(app.services, interceptors=[stack.recorder])
            stack.servers.append(server)
            assert gateway.add_backend(server.address, timeout=5.0)
        yield stack
    finally:
        stack.stop()


@dataclass
class Pki:
    """A CA, the gateway's certificate, a client certificate, and a second, unrelated CA."""

    ca: CertificateAuthority
    server: Issued
    client: Issued
    other_ca: CertificateAuthority
    stranger: Issued  # a client certificate of the other CA


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ca = make_ca(root / "ca", "mlgrid-test-ca")
    other = make_ca(root / "other", "unrelated-ca")
    return Pki(
        ca=ca,
        server=ca.issue("gateway"),
        client=ca.issue("alice", server=False),
        other_ca=other,
        stranger=other.issue("mallory", server=False),
    )
