"""Credentials from clients reach the services: the SDK, the CLI and the unmodified mlflow
client (through the plugin) send MLGRID_/MLFLOW_TRACKING_TOKEN or …_USERNAME/…_PASSWORD as the
``authorization`` metadata of every call, through the gateway port and through tunnels (whose
CONNECT carries them too when the gateway is plaintext); the REST port passes the HTTP
Authorization header on to the gRPC calls it makes. A server interceptor on the real services
records what arrives."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlgrid.client import Client
from mlgrid.transport import get_transport
from mlgrid_services.gateway import tunnel as tunnel_module
from mlgrid_services.gateway.tls import TlsSettings
from tests.auth_edge.conftest import EdgeStack, Pki, edge_stack

BEARER = "Bearer tok-123"
BASIC = "Basic " + base64.b64encode(b"alice:s3cret").decode()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeStack]:
    with edge_stack(tmp_path_factory.mktemp("credentials"), rest=True) as running:
        yield running


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, str]]:
    """The headers of every CONNECT the gateway's tunnel port parses."""
    seen: list[dict[str, str]] = []
    parse = tunnel_module.parse_head

    def recording(head: bytes) -> Any:
        request = parse(head)
        seen.append(request.headers)
        return request

    monkeypatch.setattr(tunnel_module, "parse_head", recording)
    return seen


def create_experiment(uri: str, name: str) -> None:
    Client(tracking_uri=uri).create_experiment(name)


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"MLGRID_TRACKING_TOKEN": "tok-123"}, BEARER),
        ({"MLFLOW_TRACKING_TOKEN": "tok-123"}, BEARER),
        ({"MLGRID_TRACKING_USERNAME": "alice", "MLGRID_TRACKING_PASSWORD": "s3cret"}, BASIC),
        ({"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "s3cret"}, BASIC),
        ({"MLGRID_TRACKING_TOKEN": "tok-123", "MLFLOW_TRACKING_TOKEN": "other"}, BEARER),
    ],
)
def test_sdk_calls_carry_the_credentials_through_the_tunnel_and_its_connect(
    stack: EdgeStack,
    connects: list[dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    expected: str,
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    stack.recorder.clear()
    uri = f"grpc://{stack.target}"
    create_experiment(uri, f"tunnel-{'-'.join(sorted(variables))}")
    transport = get_transport(uri)
    assert transport._tunnels is not None and transport._tunnels.in_use
    assert stack.recorder.authorizations("CreateExperiment") == [expected]
    tracking_connects = [h for h in connects if h["mlgrid-service"].endswith("TrackingService")]
    assert [h.get("authorization") for h in tracking_connects] == [expected]


def test_sdk_calls_on_the_gateway_port_carry_the_credentials(
    stack: EdgeStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGRID_GATEWAY_TUNNELS", "false")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-123")
    stack.recorder.clear()
    create_experiment(f"grpc://{stack.target}", "gateway-port")
    assert stack.recorder.authorizations("CreateExperiment") == [BEARER]


def test_without_credentials_nothing_is_sent(
    stack: EdgeStack, connects: list[dict[str, str]]
) -> None:
    stack.recorder.clear()
    create_experiment(f"grpc://{stack.target}", "anonymous")
    assert stack.recorder.authorizations("CreateExperiment") == [None]
    assert all("authorization" not in headers for headers in connects)


def test_tls_tunnels_keep_credentials_out_of_the_clear_text_connect(
    pki: Pki,
    tmp_path: Path,
    connects: list[dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tls = TlsSettings.from_files(str(pki.server.cert_path), str(pki.server.key_path))
    monkeypatch.setenv("MLGRID_TRACKING_SERVER_CERT_PATH", str(pki.ca.cert_path))
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-123")
    with edge_stack(tmp_path, tls=tls) as secure:
        uri = f"grpcs://{secure.target}"
        create_experiment(uri, "over-tls")
        transport = get_transport(uri)
        assert transport._tunnels is not None and transport._tunnels.in_use
        assert secure.recorder.authorizations("CreateExperiment") == [BEARER]
    assert connects and all("authorization" not in headers for headers in connects)


def test_rest_requests_pass_their_authorization_header_to_the_services(
    stack: EdgeStack,
) -> None:
    assert stack.gateway.rest is not None
    base = stack.gateway.rest.url
    stack.recorder.clear()
    request = urllib.request.Request(
        f"{base}/api/2.0/mlflow/experiments/create",
        data=json.dumps({"name": "over-rest"}).encode(),
        headers={"Content-Type": "application/json", "Authorization": BASIC},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        experiment_id = json.loads(answer.read())["experiment_id"]
    anonymous = f"{base}/api/2.0/mlflow/experiments/get?experiment_id={experiment_id}"
    with urllib.request.urlopen(anonymous, timeout=10) as answer:
        assert json.loads(answer.read())["experiment"]["name"] == "over-rest"
    assert stack.recorder.authorizations("CreateExperiment") == [BASIC]
    # The next request, on a connection of its own and without a header, sends none.
    assert stack.recorder.authorizations("GetExperiment") == [None]


def _client_environment(**extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MLGRID_", "MLFLOW_"))}
    environment.update(extra)
    return environment


def test_the_cli_sends_mlflow_credentials(stack: EdgeStack) -> None:
    stack.recorder.clear()
    result = subprocess.run(
        [sys.executable, "-m", "mlgrid.cli.main", "experiments", "search"],
        env=_client_environment(
            MLGRID_TRACKING_URI=f"grpc://{stack.target}",
            MLFLOW_TRACKING_USERNAME="alice",
            MLFLOW_TRACKING_PASSWORD="s3cret",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Default" in result.stdout
    assert set(stack.recorder.authorizations("SearchExperiments")) == {BASIC}


def test_the_unmodified_mlflow_client_sends_its_token_through_the_plugin(
    stack: EdgeStack,
) -> None:
    pytest.importorskip("mlflow")
    stack.recorder.clear()
    script = (
        "import mlflow\n"
        "mlflow.set_experiment('from-mlflow')\n"
        "with mlflow.start_run():\n"
        "    mlflow.log_metric('loss', 0.25)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=_client_environment(
            MLFLOW_TRACKING_URI=f"mlgrid://{stack.target}", MLFLOW_TRACKING_TOKEN="tok-123"
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    logged = stack.recorder.authorizations("LogBatch") + stack.recorder.authorizations("LogMetric")
    assert logged and set(logged) == {BEARER}
    assert set(stack.recorder.authorizations("CreateRun")) == {BEARER}
