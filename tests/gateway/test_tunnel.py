"""Gateway tunnels: a client connection pinned to the tracking/registry backend, relayed as bytes.

Real gateway, real services on port 0, real sockets; gRPC's own HTTP CONNECT support is the
client, as in the SDK.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from gateway_backends import start_artifacts

import mlgrid
from mlgrid.api.artifacts.v1 import artifacts_service_pb2 as art
from mlgrid.api.common.v1 import common_pb2, common_pb2_grpc
from mlgrid.api.tracking.v1 import tracking_service_pb2 as pb
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as pb_grpc
from mlgrid.exceptions import InvalidParameterValue, TemporarilyUnavailable
from mlgrid.transport import Transport
from mlgrid_services.common.server import start_server
from mlgrid_services.gateway.app import start_gateway
from tests.fixtures.stack import Stack, start_stack

TRACKING = "mlgrid.api.tracking.v1.TrackingService"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(
        tmp_path_factory.mktemp("tunnel"), services=["tracking", "registry"]
    ) as running:
        yield running


def tunnel_port(stack: Stack) -> int:
    assert stack.gateway.tunnel is not None
    return stack.gateway.tunnel.port


def raw_connect(port: int, head: str) -> str:
    """Sends ``head`` to the tunnel port; returns the gateway's answer up to the blank line."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head.encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.decode("utf-8", "replace")


def tunnelled_stub(port: int, service: str = TRACKING, target: str = "anything:1") -> Any:
    channel = grpc.insecure_channel(
        target,
        options=[
            ("grpc.http_proxy", f"http://127.0.0.1:{port}"),
            ("grpc.http_connect_headers", f"mlgrid-service:{service}"),
        ],
    )
    return channel, pb_grpc.TrackingServiceStub(channel)


def test_the_gateway_announces_its_tunnel_port(stack: Stack) -> None:
    info = common_pb2_grpc.BackendInfoServiceStub(stack.channel()).GetBackendInfo(
        common_pb2.GetBackendInfoRequest(), timeout=5
    )
    assert info.tunnel_port == tunnel_port(stack) > 0


def test_grpc_over_a_tunnel_reaches_the_tracking_backend(stack: Stack) -> None:
    channel, stub = tunnelled_stub(tunnel_port(stack))
    with channel:
        created = stub.CreateExperiment(pb.CreateExperimentRequest(name="through-a-tunnel"))
        got = stub.GetExperiment(pb.GetExperimentRequest(experiment_id=created.experiment_id))
    assert got.experiment.name == "through-a-tunnel"


def test_the_target_a_client_names_is_ignored(stack: Stack) -> None:
    """Only backends in the routing table are reachable: the CONNECT target cannot steer."""
    channel, stub = tunnelled_stub(tunnel_port(stack), target="169.254.169.254:80")
    with channel:
        created = stub.CreateExperiment(pb.CreateExperimentRequest(name="not-steered"), timeout=5)
    assert created.experiment_id


@pytest.mark.parametrize(
    ("head", "status", "says"),
    [
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "400", "only 'CONNECT <target> HTTP/1.1'"),
        ("CONNECT x:1 HTTP/1.1\r\n\r\n", "404", "no tunnel for service ''"),
        (
            "CONNECT x:1 HTTP/1.1\r\nmlgrid-service: mlgrid.api.nope.v1.Nope\r\n\r\n",
            "404",
            "tunnelled services: mlgrid.api.artifacts.v1.ArtifactsService",
        ),
        (
            f"CONNECT x:1 HTTP/1.1\r\nmlgrid-service: {TRACKING}\r\nmlgrid-route: "
            + "s" * 3000
            + "\r\n\r\n",
            "400",
            "mlgrid-route is longer than 2048 characters",
        ),
        ("CONNECT x:1 HTTP/1.1\r\nno colon here\r\n\r\n", "400", "malformed header line"),
        ("CONNECT x:1 HTTP/1.1\r\nx-big: " + "a" * 9000 + "\r\n\r\n", "431", "longer than"),
    ],
)
def test_bad_requests_get_a_clear_http_answer(
    stack: Stack, head: str, status: str, says: str
) -> None:
    answer = raw_connect(tunnel_port(stack), head)
    assert answer.startswith(f"HTTP/1.1 {status} ")
    assert says in answer


def tracking_tunnel_answer(tracking_backend: str | None) -> str:
    """What a fresh gateway (tracking routed to ``tracking_backend``, if any) answers a CONNECT."""
    gateway = start_gateway(tunnel_port=0)
    try:
        if tracking_backend is not None:
            gateway.add_route("tracking", "", tracking_backend)
        assert gateway.tunnel is not None
        return raw_connect(
            gateway.tunnel.port, f"CONNECT x:1 HTTP/1.1\r\nmlgrid-service: {TRACKING}\r\n\r\n"
        )
    finally:
        gateway.stop(grace=0)


def test_a_service_with_no_backend_gets_503_naming_it() -> None:
    answer = tracking_tunnel_answer(None)
    assert answer.startswith("HTTP/1.1 503 no backend serves tracking")


def test_a_backend_that_is_down_gets_502_naming_it() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{probe.getsockname()[1]}"
    answer = tracking_tunnel_answer(dead)
    assert answer.startswith(f"HTTP/1.1 502 default tracking backend at {dead}")
    assert "is unavailable" in answer


def test_stopping_the_gateway_closes_its_tunnels(tmp_path: Path) -> None:
    with start_stack(tmp_path, services=["tracking"]) as own:
        channel, stub = tunnelled_stub(tunnel_port(own))
        with channel:
            stub.CreateExperiment(pb.CreateExperimentRequest(name="before-stop"), timeout=5)
            own.gateway.stop(grace=0)
            with pytest.raises(grpc.RpcError) as caught:
                stub.CreateExperiment(pb.CreateExperimentRequest(name="after-stop"), timeout=5)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


# -- the SDK -----------------------------------------------------------------------------------


def test_the_sdk_sends_tracking_and_registry_calls_through_the_tunnel(stack: Stack) -> None:
    transport = Transport(stack.tracking_uri)
    try:
        # this test's own transport, to look inside it
        client = mlgrid.MlflowClient(stack.tracking_uri, transport=transport)
        experiment = client.create_experiment("sdk-tunnel")
        run = client.create_run(experiment).info.run_id
        client.log_metric(run, "loss", 0.5, step=1)
        client.create_registered_model("tunnelled-model")
        assert transport._tunnels is not None and transport._tunnels.in_use
        assert transport._tunnels is not None and set(transport._tunnels.stubs) == {
            ("tracking", ""),
            ("registry", ""),
        }
        assert [m.value for m in client.get_metric_history(run, "loss")] == [0.5]
        assert client.get_registered_model("tunnelled-model").name == "tunnelled-model"
    finally:
        transport.close()


def test_the_sdk_uses_the_gateway_port_when_tunnels_are_off(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGRID_GATEWAY_TUNNELS", "false")
    transport = Transport(stack.tracking_uri)
    try:
        assert transport.tracking is transport._gateway_tracking
        stub = transport.tracking
        created = transport.call(stub.CreateExperiment, pb.CreateExperimentRequest(name="no-tun"))
        assert created.experiment_id
        assert transport._tunnels is not None and not transport._tunnels.in_use
    finally:
        transport.close()


def test_calls_naming_a_store_use_the_gateway_port(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway routes those per call (mlgrid-store-uri); a tunnel is pinned to the default."""
    monkeypatch.setenv("MLGRID_STORE_URI", "sqlite:///elsewhere.db")
    transport = Transport(stack.tracking_uri)
    try:
        assert transport.tracking is transport._gateway_tracking
        assert transport.registry is transport._gateway_registry
    finally:
        transport.close()


def test_the_sdk_falls_back_when_the_tunnel_port_is_unreachable(tmp_path: Path) -> None:
    with start_stack(tmp_path, services=["tracking"]) as own:
        assert own.gateway.tunnel is not None
        own.gateway.tunnel.stop()  # announced, but nobody listens any more
        transport = Transport(own.tracking_uri)
        try:
            started = time.monotonic()
            stub = transport.tracking
            assert stub is transport._gateway_tracking
            assert time.monotonic() - started < 1.0  # refused at once, no timeout
            created = transport.call(stub.CreateExperiment, pb.CreateExperimentRequest(name="fb"))
            assert created.experiment_id
        finally:
            transport.close()


def test_a_backend_lost_behind_a_tunnel_is_reported_and_the_tunnel_carries_on_when_it_is_back(
    tmp_path: Path,
) -> None:
    own = start_stack(tmp_path, services=["tracking"])
    transport = Transport(own.tracking_uri)
    try:
        tunnelled = transport.tracking
        assert tunnelled is not transport._gateway_tracking
        transport.call(tunnelled.CreateExperiment, pb.CreateExperimentRequest(name="alive"))
        address = own.servers["tracking"].address
        own.servers["tracking"].stop(grace=0)
        request = pb.CreateExperimentRequest(name="back")
        with pytest.raises(TemporarilyUnavailable):
            transport.call(transport.tracking.CreateExperiment, request, timeout=5)
        # The route stays declared: no switch to the gateway port behind the caller's back.
        assert transport.tracking is tunnelled
        own.servers["tracking"] = start_server(own.apps["tracking"].services, address=address)
        deadline = time.monotonic() + 15
        while True:  # the tunnel reconnects within its backoff (at most 2 s between tries)
            try:
                created = transport.call(tunnelled.CreateExperiment, request, timeout=5)
                break
            except TemporarilyUnavailable:
                assert time.monotonic() < deadline, "the tunnel did not reconnect"
                time.sleep(0.2)
        assert created.experiment_id
        assert transport.tracking is tunnelled
    finally:
        transport.close()
        own.stop()


def test_a_store_named_after_the_tunnel_opened_still_reaches_the_gateway_port(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = Transport(stack.tracking_uri)
    try:
        tunnelled = transport.tracking
        assert tunnelled is not transport._gateway_tracking
        monkeypatch.setenv("MLGRID_STORE_URI", "sqlite:///elsewhere.db")
        assert transport.tracking is transport._gateway_tracking
        monkeypatch.delenv("MLGRID_STORE_URI")
        assert transport.tracking is tunnelled
    finally:
        transport.close()


def test_artifact_calls_ride_the_tunnel_of_their_uri_scheme() -> None:
    """One tunnel per scheme: each reaches that scheme's backend, as the gateway port would."""
    files, objects = start_artifacts("files", ["file"]), start_artifacts("objects", ["s3"])
    gateway = start_gateway(tunnel_port=0, backends=[files.address, objects.address])
    transport = Transport(f"grpc://{gateway.address}")
    try:
        answers = {}
        for uri in ("s3://bucket/run", "file:///tmp/run", "/plain/path"):
            stub = transport.artifacts_for(uri)
            assert stub is not transport.artifacts
            request = art.ListArtifactsRequest(artifact_uri=uri)
            answers[uri] = transport.call(stub.ListArtifacts, request).files[0].path
        assert answers == {
            "s3://bucket/run": "objects:s3://bucket/run",
            "file:///tmp/run": "files:file:///tmp/run",
            "/plain/path": "files:/plain/path",
        }
        assert transport._tunnels is not None and set(transport._tunnels.stubs) == {
            ("artifacts", "s3:"),
            ("artifacts", "file:"),
        }
        # Streams pass through unchanged too.
        upload = transport.artifacts_for("s3://bucket/run").UploadArtifact(
            iter([art.UploadArtifactRequest(artifact_uri="s3://bucket/run", data=b"x" * 5)]),
            timeout=5,
        )
        assert upload.file.path.startswith("objects:") and upload.file.file_size == 5
    finally:
        transport.close()
        gateway.stop(grace=0)
        files.stop()
        objects.stop()


def test_a_scheme_nobody_serves_gets_no_tunnel_and_the_gateways_clear_error() -> None:
    files = start_artifacts("files", ["file"])
    gateway = start_gateway(tunnel_port=0, backends=[files.address])
    transport = Transport(f"grpc://{gateway.address}")
    try:
        assert gateway.tunnel is not None
        answer = raw_connect(
            gateway.tunnel.port,
            "CONNECT x:1 HTTP/1.1\r\nmlgrid-service: mlgrid.api.artifacts.v1.ArtifactsService"
            "\r\nmlgrid-route: gs:\r\n\r\n",
        )
        assert answer.startswith("HTTP/1.1 503 no backend serves artifacts for 'gs'")
        started = time.monotonic()
        stub = transport.artifacts_for("gs://bucket/run")
        assert stub is transport.artifacts
        assert time.monotonic() - started < 1.0  # the refusal is seen at once, no timeout
        # ... and it spoils no other scheme's tunnel.
        assert transport.artifacts_for("file:///x") is not transport.artifacts
        with pytest.raises(InvalidParameterValue, match="no artifacts backend serves scheme 'gs'"):
            transport.call(stub.ListArtifacts, art.ListArtifactsRequest(artifact_uri="gs://b/r"))
    finally:
        transport.close()
        gateway.stop(grace=0)
        files.stop()
