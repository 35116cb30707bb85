"""TLS on the gateway: its gRPC, tunnel and REST ports serve the certificate from its files;
with a client CA every port requires a client certificate. The SDK's grpcs:// settings
(MLGRID_/MLFLOW_TRACKING_SERVER_CERT_PATH, …_CLIENT_CERT_PATH, …_CLIENT_KEY_PATH) work against
it, tunnels included. Certificates are made by the test (tests/auth_edge/keys.py)."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from mlgrid.api.common.v1 import common_pb2, common_pb2_grpc
from mlgrid.api.tracking.v1 import tracking_service_pb2 as pb
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as pb_grpc
from mlgrid.client import Client
from mlgrid.exceptions import InvalidParameterValue, TemporarilyUnavailable
from mlgrid.pipeline import _CallerThreadStream
from mlgrid.transport import get_transport
from mlgrid_services.gateway.app import start_gateway
from mlgrid_services.gateway.tls import TlsConfigError, TlsSettings
from tests.auth_edge.conftest import EdgeStack, Pki, edge_stack

TRACKING = "mlgrid.api.tracking.v1.TrackingService"


@pytest.fixture(scope="module")
def server_tls(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeStack]:
    """TLS with the gateway's certificate only."""
    tls = TlsSettings.from_files(str(pki.server.cert_path), str(pki.server.key_path))
    with edge_stack(tmp_path_factory.mktemp("server-tls"), tls=tls, rest=True) as stack:
        yield stack


@pytest.fixture(scope="module")
def mutual_tls(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeStack]:
    """Mutual TLS: client certificates signed by the test CA required on every port."""
    tls = TlsSettings.from_files(
        str(pki.server.cert_path), str(pki.server.key_path), str(pki.ca.cert_path)
    )
    with edge_stack(tmp_path_factory.mktemp("mutual-tls"), tls=tls, rest=True) as stack:
        yield stack


def log_a_run(uri: str, tmp_path: Path) -> Client:
    """What a user does: an experiment, a run with a metric and an artifact, read back."""
    client = Client(tracking_uri=uri)
    experiment_id = client.create_experiment(f"tls-{tmp_path.name}")
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "loss", 0.5, step=1)
    client.log_text(run.info.run_id, "hello over TLS", "notes/hello.txt")
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == [0.5]
    listed = client.list_artifacts(run.info.run_id, "notes")
    assert [f.path for f in listed] == ["notes/hello.txt"]
    return client


def tunnels_in_use(uri: str) -> bool:
    tunnels = get_transport(uri)._tunnels
    return tunnels is not None and tunnels.in_use


def metric_rode_the_callers_thread(uri: str) -> bool:
    """The metric went on a call pipeline run by the caller's thread (mlgrid/_grpc_stream.py),
    inside the TLS tunnel."""
    pipeline = get_transport(uri)._pipeline
    stream = pipeline._stream if pipeline is not None else None
    return isinstance(stream, _CallerThreadStream) and stream.answered >= 1


# ---------------------------------------------------------------- server-auth TLS


def test_sdk_logs_over_tls_with_the_ca_bundle_and_tunnels(
    server_tls: EdgeStack, pki: Pki, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLGRID_TRACKING_SERVER_CERT_PATH", str(pki.ca.cert_path))
    uri = f"grpcs://{server_tls.target}"
    log_a_run(uri, tmp_path)
    assert tunnels_in_use(uri)  # tracking and artifacts went through TLS tunnels
    assert metric_rode_the_callers_thread(uri)


def test_mlflow_names_of_the_tls_settings_work(
    server_tls: EdgeStack, pki: Pki, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(pki.ca.cert_path))
    log_a_run(f"grpcs://{server_tls.target}", tmp_path)


def test_a_gateway_signed_by_another_ca_is_refused_with_a_clear_message(
    server_tls: EdgeStack, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGRID_TRACKING_SERVER_CERT_PATH", str(pki.other_ca.cert_path))
    client = Client(tracking_uri=f"grpcs://{server_tls.target}")
    with pytest.raises(TemporarilyUnavailable) as info:
        client.create_experiment("never")
    message = info.value.message
    assert f"the certificate of the gateway at {server_tls.target} is not trusted" in message
    assert f"MLGRID_TRACKING_SERVER_CERT_PATH={str(pki.other_ca.cert_path)!r}" in message


def test_a_plaintext_client_gets_nothing_from_a_tls_gateway(server_tls: EdgeStack) -> None:
    before = len(server_tls.recorder.calls)
    channel = grpc.insecure_channel(server_tls.target)
    with pytest.raises(grpc.RpcError) as info:
        pb_grpc.TrackingServiceStub(channel).GetExperiment(
            pb.GetExperimentRequest(experiment_id="0"), timeout=5
        )
    channel.close()
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert len(server_tls.recorder.calls) == before


def test_the_rest_port_serves_https_with_the_same_certificate(
    server_tls: EdgeStack, pki: Pki
) -> None:
    assert server_tls.gateway.rest is not None
    url = server_tls.gateway.rest.url
    assert url.startswith("https://")
    context = ssl.create_default_context(cafile=str(pki.ca.cert_path))
    with urllib.request.urlopen(f"{url}/health", context=context, timeout=5) as answer:
        assert answer.read() == b"OK"
    plain = url.replace("https://", "http://")
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"{plain}/health", timeout=5)


# ---------------------------------------------------------------- mutual TLS


def test_mutual_tls_with_a_client_certificate(
    mutual_tls: EdgeStack, pki: Pki, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLGRID_TRACKING_SERVER_CERT_PATH", str(pki.ca.cert_path))
    monkeypatch.setenv("MLGRID_TRACKING_CLIENT_CERT_PATH", str(pki.client.cert_path))
    monkeypatch.setenv("MLGRID_TRACKING_CLIENT_KEY_PATH", str(pki.client.key_path))
    uri = f"grpcs://{mutual_tls.target}"
    log_a_run(uri, tmp_path)
    assert tunnels_in_use(uri)
    assert metric_rode_the_callers_thread(uri)


def test_mutual_tls_with_the_key_in_the_certificate_file_as_mlflow_takes_it(
    mutual_tls: EdgeStack, pki: Pki, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    combined = tmp_path / "alice.pem"
    combined.write_bytes(pki.client.cert_path.read_bytes() + pki.client.key_path.read_bytes())
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(pki.ca.cert_path))
    monkeypatch.setenv("MLFLOW_TRACKING_CLIENT_CERT_PATH", str(combined))
    log_a_run(f"grpcs://{mutual_tls.target}", tmp_path)


def test_mutual_tls_refuses_a_client_without_a_certificate(
    mutual_tls: EdgeStack, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGRID_TRACKING_SERVER_CERT_PATH", str(pki.ca.cert_path))
    client = Client(tracking_uri=f"grpcs://{mutual_tls.target}")
    before = len(mutual_tls.recorder.calls)
    with pytest.raises(TemporarilyUnavailable) as info:
        client.create_experiment("never")
    assert "may require a client certificate (mutual TLS)" in info.value.message
    assert "MLGRID_TRACKING_CLIENT_CERT_PATH" in info.value.message
    assert len(mutual_tls.recorder.calls) == before  # nothing reached a service


def test_mutual_tls_refuses_a_certificate_of_another_ca(
    mutual_tls: EdgeStack, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGRID_TRACKING_SERVER_CERT_PATH", str(pki.ca.cert_path))
    monkeypatch.setenv("MLGRID_TRACKING_CLIENT_CERT_PATH", str(pki.stranger.cert_path))
    monkeypatch.setenv("MLGRID_TRACKING_CLIENT_KEY_PATH", str(pki.stranger.key_path))
    client = Client(tracking_uri=f"grpcs://{mutual_tls.target}")
    with pytest.raises(TemporarilyUnavailable, match="ended the connection during TLS setup"):
        client.create_experiment("never")


def _tunnel_channel(stack: EdgeStack, credentials: grpc.ChannelCredentials) -> grpc.Channel:
    assert stack.gateway.tunnel is not None
    return grpc.secure_channel(
        "anything:1",
        credentials,
        options=[
            ("grpc.http_proxy", f"http://127.0.0.1:{stack.gateway.tunnel.port}"),
            ("grpc.http_connect_headers", f"mlgrid-service:{TRACKING}"),
            ("grpc.ssl_target_name_override", "127.0.0.1"),
        ],
    )


def test_the_tunnel_port_requires_the_client_certificate_too(
    mutual_tls: EdgeStack, pki: Pki
) -> None:
    request = pb.GetExperimentRequest(experiment_id="0")
    without = _tunnel_channel(
        mutual_tls, grpc.ssl_channel_credentials(pki.ca.cert_path.read_bytes())
    )
    with pytest.raises(grpc.RpcError) as info:
        pb_grpc.TrackingServiceStub(without).GetExperiment(request, timeout=5)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    without.close()
    with_cert = _tunnel_channel(
        mutual_tls,
        grpc.ssl_channel_credentials(
            pki.ca.cert_path.read_bytes(),
            pki.client.key_path.read_bytes(),
            pki.client.cert_path.read_bytes(),
        ),
    )
    answer = pb_grpc.TrackingServiceStub(with_cert).GetExperiment(request, timeout=5)
    assert answer.experiment.name == "Default"
    with_cert.close()


def test_the_rest_port_requires_the_client_certificate_too(mutual_tls: EdgeStack, pki: Pki) -> None:
    assert mutual_tls.gateway.rest is not None
    url = f"{mutual_tls.gateway.rest.url}/health"
    anonymous = ssl.create_default_context(cafile=str(pki.ca.cert_path))
    with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
        urllib.request.urlopen(url, context=anonymous, timeout=5).read()
    identified = ssl.create_default_context(cafile=str(pki.ca.cert_path))
    identified.load_cert_chain(pki.client.cert_path, pki.client.key_path)
    with urllib.request.urlopen(url, context=identified, timeout=5) as answer:
        assert answer.read() == b"OK"


# ---------------------------------------------------------------- configuration errors


def test_a_key_that_is_not_the_certificates_is_refused_at_start(pki: Pki) -> None:
    with pytest.raises(
        TlsConfigError, match=r"--tls-key / MLGRID_GATEWAY_TLS_KEY: .* is not the key"
    ):
        TlsSettings.from_files(str(pki.server.cert_path), str(pki.client.key_path))


@pytest.mark.parametrize(
    ("cert", "key", "client_ca", "message"),
    [
        ("server", None, None, "set --tls-key / MLGRID_GATEWAY_TLS_KEY too"),
        (None, None, "ca", "needs TLS on"),
        ("missing", "server-key", None, "--tls-cert / MLGRID_GATEWAY_TLS_CERT: cannot read"),
        ("server-key", "server-key", None, "holds no PEM certificate"),
    ],
)
def test_incomplete_gateway_tls_settings_name_the_setting(
    pki: Pki, cert: str | None, key: str | None, client_ca: str | None, message: str
) -> None:
    files = {
        "server": str(pki.server.cert_path),
        "server-key": str(pki.server.key_path),
        "ca": str(pki.ca.cert_path),
        "missing": "/nonexistent/gateway.crt",
    }
    with pytest.raises(TlsConfigError, match=message):
        TlsSettings.from_files(
            files.get(cert or ""), files.get(key or ""), files.get(client_ca or "")
        )


def test_a_client_certificate_without_its_key_names_the_variable(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_CLIENT_CERT_PATH", str(pki.client.cert_path))
    with pytest.raises(
        InvalidParameterValue, match=r"MLFLOW_TRACKING_CLIENT_CERT_PATH .*no PEM private key"
    ):
        Client(tracking_uri="grpcs://127.0.0.1:1")


# ---------------------------------------------------------------- the unmodified mlflow client


def _mlflow(script: str, **variables: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MLGRID_", "MLFLOW_"))}
    environment.update(variables)
    return subprocess.run(
        [sys.executable, "-c", script],
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
    )


LOG_A_RUN = (
    "import mlflow\n"
    "mlflow.set_experiment('{name}')\n"
    "with mlflow.start_run() as run:\n"
    "    mlflow.log_metric('loss', 0.25)\n"
    "print(mlflow.get_run(run.info.run_id).data.metrics['loss'])\n"
)


def test_the_mlflow_plugin_over_mutual_tls_with_mlflows_variables(
    mutual_tls: EdgeStack, pki: Pki
) -> None:
    pytest.importorskip("mlflow")
    result = _mlflow(
        LOG_A_RUN.format(name="plugin-mtls"),
        MLFLOW_TRACKING_URI=f"mlgrids://{mutual_tls.target}",
        MLFLOW_TRACKING_SERVER_CERT_PATH=str(pki.ca.cert_path),
        MLFLOW_TRACKING_CLIENT_CERT_PATH=str(pki.client.cert_path),
        MLGRID_TRACKING_CLIENT_KEY_PATH=str(pki.client.key_path),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("0.25")


def test_the_mlflow_rest_client_over_https(server_tls: EdgeStack, pki: Pki) -> None:
    pytest.importorskip("mlflow")
    assert server_tls.gateway.rest is not None
    result = _mlflow(
        LOG_A_RUN.format(name="rest-https"),
        MLFLOW_TRACKING_URI=server_tls.gateway.rest.url,
        MLFLOW_TRACKING_SERVER_CERT_PATH=str(pki.ca.cert_path),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("0.25")


def test_the_internal_port_is_plaintext_on_loopback_and_offers_no_tunnels(pki: Pki) -> None:
    """mlgrid up's services reach a TLS gateway there; its TLS tunnel port would refuse their
    plaintext tunnels, so it is not announced to them."""
    tls = TlsSettings.from_files(str(pki.server.cert_path), str(pki.server.key_path))
    gateway = start_gateway(tls=tls, tunnel_port=0, internal_port=0)
    try:
        request = common_pb2.GetBackendInfoRequest()
        secure = grpc.secure_channel(
            f"127.0.0.1:{gateway.port}",
            grpc.ssl_channel_credentials(pki.ca.cert_path.read_bytes()),
        )
        internal = grpc.insecure_channel(f"127.0.0.1:{gateway.internal_port}")
        assert gateway.tunnel is not None
        info = common_pb2_grpc.BackendInfoServiceStub(secure).GetBackendInfo(request, timeout=5)
        assert info.tunnel_port == gateway.tunnel.port
        info = common_pb2_grpc.BackendInfoServiceStub(internal).GetBackendInfo(request, timeout=5)
        assert info.tunnel_port == 0 and info.services
        secure.close()
        internal.close()
    finally:
        gateway.stop(grace=0.5)


def test_bulk_bytes_and_parallel_calls_through_a_mutual_tls_tunnel(
    mutual_tls: EdgeStack, pki: Pki, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The tunnel's TLS end relays both directions at once: large uploads and downloads, and
    many small calls from several threads, arrive intact."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("MLGRID_TRACKING_SERVER_CERT_PATH", str(pki.ca.cert_path))
    monkeypatch.setenv("MLGRID_TRACKING_CLIENT_CERT_PATH", str(pki.client.cert_path))
    monkeypatch.setenv("MLGRID_TRACKING_CLIENT_KEY_PATH", str(pki.client.key_path))
    uri = f"grpcs://{mutual_tls.target}"
    client = Client(tracking_uri=uri)
    run_id = client.create_run(client.create_experiment("bulk-over-tls")).info.run_id
    payload = os.urandom(12 * 1024 * 1024)
    source = tmp_path / "weights.bin"
    source.write_bytes(payload)
    client.log_artifact(run_id, source, "model")

    def log(step: int) -> None:
        client.log_metric(run_id, "loss", step / 100, step=step)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(log, range(200)))
    downloaded = client.download_artifacts(run_id, "model/weights.bin", str(tmp_path / "out"))
    assert Path(downloaded).read_bytes() == payload
    history = client.get_metric_history(run_id, "loss")
    assert sorted(m.step for m in history) == list(range(200))
    tunnels = get_transport(uri)._tunnels
    assert tunnels is not None
    assert tunnels.channel("artifacts", "file:") is not None  # the bytes went through a tunnel
    assert tunnels.channel("tracking") is not None
