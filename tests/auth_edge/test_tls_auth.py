"""A TLS gateway with authentication on: the SDK's tunnels still carry its calls (their
clear-text CONNECT holds no credentials; each call's own, inside TLS, are checked by the
service), and a caller without credentials is refused all the same."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from mlgrid.api.tracking.v1 import tracking_service_pb2 as pb
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as pb_grpc
from mlgrid.client import Client
from mlgrid.exceptions import Unauthenticated
from mlgrid.transport import get_transport
from mlgrid_services.common.app import create_service_app
from mlgrid_services.common.auth.runtime import (
    AuthRuntime,
    auth_runtime,
    load_jwt_verifier,
    release_runtime,
)
from mlgrid_services.common.auth.settings import AuthSettings
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.server import start_server
from mlgrid_services.gateway.app import Gateway, start_gateway
from mlgrid_services.gateway.tls import TlsSettings
from tests.auth_edge.conftest import Pki

ADMIN = ("admin", "admin-password-1")
TRACKING = "mlgrid.api.tracking.v1.TrackingService"


@pytest.fixture(scope="module")
def tls_auth_gateway(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("tls-auth")
    store = f"sqlite:///{tmp / 'mlgrid.db'}"
    settings = AuthSettings(
        enabled=True,
        secret="a-test-secret-of-enough-length-0123456789",
        store_uri=store,
        admin_username=ADMIN[0],
        admin_password=ADMIN[1],
        cache_seconds=0.5,
    )
    tls = TlsSettings.from_files(str(pki.server.cert_path), str(pki.server.key_path))
    edge = AuthRuntime(settings, load_jwt_verifier())
    gateway = start_gateway(tunnel_port=0, tls=tls, internal_port=0, auth=edge)
    config = ServiceConfig(
        backend_store_uri=store,
        default_artifact_root=(tmp / "artifacts").resolve().as_uri(),
        auth=settings,
    ).with_gateway(f"127.0.0.1:{gateway.internal_port}")
    apps, servers = [], []
    try:
        for name in ("tracking", "artifacts"):
            app = create_service_app(name, config)
            apps.append(app)
            server = start_server(app.services, auth=auth_runtime(settings))
            servers.append(server)
            assert gateway.add_backend(server.address, timeout=5.0)
        yield gateway
    finally:
        gateway.stop(grace=0.5)
        for server in servers:
            server.stop(grace=0.5)
        for app in apps:
            app.close()
        edge.close()
        release_runtime(settings)


def test_sdk_over_tls_tunnels_with_auth_on(
    tls_auth_gateway: Gateway, pki: Pki, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLGRID_TRACKING_SERVER_CERT_PATH", str(pki.ca.cert_path))
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
    uri = f"grpcs://127.0.0.1:{tls_auth_gateway.port}"
    client = Client(tracking_uri=uri)
    run = client.create_run(client.create_experiment("tls-and-auth"))
    client.log_metric(run.info.run_id, "loss", 0.5)
    client.log_text(run.info.run_id, "hi", "notes/hi.txt")
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == [0.5]
    tunnels = get_transport(uri)._tunnels
    assert tunnels is not None and tunnels.channel("tracking") is not None


def test_a_tls_tunnel_without_credentials_reaches_nothing(
    tls_auth_gateway: Gateway, pki: Pki
) -> None:
    assert tls_auth_gateway.tunnel is not None
    channel = grpc.secure_channel(
        "anything:1",
        grpc.ssl_channel_credentials(pki.ca.cert_path.read_bytes()),
        options=[
            ("grpc.http_proxy", f"http://127.0.0.1:{tls_auth_gateway.tunnel.port}"),
            ("grpc.http_connect_headers", f"mlgrid-service:{TRACKING}"),
            ("grpc.ssl_target_name_override", "127.0.0.1"),
        ],
    )
    stub = pb_grpc.TrackingServiceStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.GetExperiment(pb.GetExperimentRequest(experiment_id="0"), timeout=5)
    assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
    basic = base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()
    answer = stub.GetExperiment(
        pb.GetExperimentRequest(experiment_id="0"),
        metadata=[("authorization", f"Basic {basic}")],
        timeout=5,
    )
    assert answer.experiment.experiment_id == "0"
    channel.close()


def test_an_sdk_client_without_credentials_is_refused(
    tls_auth_gateway: Gateway, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGRID_TRACKING_SERVER_CERT_PATH", str(pki.ca.cert_path))
    client = Client(tracking_uri=f"grpcs://localhost:{tls_auth_gateway.port}")
    with pytest.raises(Unauthenticated):
        client.create_experiment("anonymous")
