"""The gateway routes each call by (service, scheme) to the backend that serves it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
from gateway_backends import Backend, start_artifacts, start_projects, start_tracking

from mlgrid._rpc_errors import from_rpc_error
from mlgrid.api.artifacts.v1 import artifacts_service_pb2 as art
from mlgrid.api.artifacts.v1 import artifacts_service_pb2_grpc as art_grpc
from mlgrid.api.projects.v1 import projects_service_pb2 as proj
from mlgrid.api.projects.v1 import projects_service_pb2_grpc as proj_grpc
from mlgrid.api.tracking.v1 import tracking_service_pb2 as trk
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as trk_grpc
from mlgrid.exceptions import InvalidParameterValue, TemporarilyUnavailable
from mlgrid.protocol import STORE_URI_METADATA
from mlgrid_services.gateway.app import Gateway, start_gateway
from mlgrid_services.gateway.config import GatewayConfigError, load_config


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, Backend]]:
    started = {
        "files": start_artifacts("files", ["file"]),
        "objects": start_artifacts("objects", ["s3"]),
        "local": start_projects("local-runner", ["local"]),
        "docker": start_projects("docker-runner", ["docker"]),
        "sql": start_tracking("sql-store", ["sqlite", "postgresql"]),
        "plugin": start_tracking("plugin-store", []),
    }
    yield started
    for backend in started.values():
        backend.stop()


@pytest.fixture(scope="module")
def gateway(backends: dict[str, Backend]) -> Iterator[Gateway]:
    announced = [backends[name].address for name in ("files", "objects", "local", "docker", "sql")]
    gw = start_gateway(backends=announced)
    # A plugin store served as its own process, routed explicitly (as from the config file).
    gw.add_route("tracking", "file-plugin", backends["plugin"].address)
    yield gw
    gw.stop(grace=0)


@pytest.fixture(scope="module")
def channel(gateway: Gateway) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(gateway.address) as ch:
        yield ch


def list_first_path(channel: grpc.Channel, artifact_uri: str) -> str:
    response = art_grpc.ArtifactsServiceStub(channel).ListArtifacts(
        art.ListArtifactsRequest(artifact_uri=artifact_uri), timeout=5
    )
    return str(response.files[0].path)


def test_artifacts_calls_reach_the_backend_of_their_uri_scheme(channel: grpc.Channel) -> None:
    assert list_first_path(channel, "file:///data/run1") == "files:file:///data/run1"
    assert list_first_path(channel, "s3://bucket/run1") == "objects:s3://bucket/run1"
    # A plain path is a local file path, as in MLflow.
    assert list_first_path(channel, "/data/run2") == "files:/data/run2"
    assert list_first_path(channel, "S3://bucket/upper") == "objects:S3://bucket/upper"


def test_unknown_artifact_scheme_is_invalid_argument_listing_known_schemes(
    channel: grpc.Channel,
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        list_first_path(channel, "gs://bucket/x")
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details()
    assert "'gs'" in details and "artifact_uri" in details
    assert "'file', 's3'" in details
    assert isinstance(from_rpc_error(caught.value), InvalidParameterValue)


def test_projects_calls_reach_the_backend_they_name_local_by_default(
    channel: grpc.Channel,
) -> None:
    stub = proj_grpc.ProjectsServiceStub(channel)
    default = stub.GetRunStatus(proj.GetRunStatusRequest(run_id="r1"), timeout=5)
    docker = stub.GetRunStatus(proj.GetRunStatusRequest(backend="docker", run_id="r2"), timeout=5)
    assert default.message == "local-runner:r1"
    assert docker.message == "docker-runner:r2"
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetRunStatus(proj.GetRunStatusRequest(backend="kubernetes", run_id="r3"), timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "backend 'kubernetes'" in caught.value.details()
    assert "'docker', 'local'" in caught.value.details()


def experiment_name(channel: grpc.Channel, store_uri: str | None) -> str:
    metadata = [(STORE_URI_METADATA, store_uri)] if store_uri else []
    response = trk_grpc.TrackingServiceStub(channel).GetExperiment(
        trk.GetExperimentRequest(experiment_id="7"), metadata=metadata, timeout=5
    )
    return str(response.experiment.name)


def test_tracking_calls_reach_the_store_named_in_metadata_else_the_default(
    channel: grpc.Channel,
) -> None:
    assert experiment_name(channel, None) == "sql-store"
    assert experiment_name(channel, "file-plugin:///tmp/store") == "plugin-store"
    assert experiment_name(channel, "postgresql+psycopg://u@h/db") == "sql-store"
    # A grpc:// tracking URI names the gateway itself, not a store: the default store serves it.
    assert experiment_name(channel, "grpc://127.0.0.1:50051") == "sql-store"
    with pytest.raises(grpc.RpcError) as caught:
        experiment_name(channel, "mysql://u@h/db")
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "'mysql'" in caught.value.details()
    assert "'file-plugin', 'postgresql', 'sqlite'" in caught.value.details()


def test_backend_down_is_unavailable_naming_it_while_other_routes_work(
    gateway: Gateway, channel: grpc.Channel
) -> None:
    doomed = start_artifacts("doomed", ["gs"])
    gateway.add_backend(doomed.address)
    assert list_first_path(channel, "gs://bucket/a") == "doomed:gs://bucket/a"
    doomed.stop()
    with pytest.raises(grpc.RpcError) as caught:
        list_first_path(channel, "gs://bucket/a")
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    details = caught.value.details()
    assert "artifacts backend for scheme 'gs'" in details and doomed.address in details
    assert isinstance(from_rpc_error(caught.value), TemporarilyUnavailable)
    assert list_first_path(channel, "s3://bucket/b") == "objects:s3://bucket/b"


def test_routes_from_a_yaml_config_file(tmp_path, backends: dict[str, Backend]) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "discover:\n"
        f"  - {backends['local'].address}\n"
        "backends:\n"
        f"  - {{service: artifacts, scheme: file-plugin, address: '{backends['objects'].address}'}}\n"
        f"  - {{service: artifacts, scheme: file, address: '{backends['files'].address}'}}\n"
        "defaults:\n"
        f"  tracking: '{backends['plugin'].address}'\n"
    )
    gw = start_gateway(config=load_config(routes))
    try:
        with grpc.insecure_channel(gw.address) as ch:
            assert list_first_path(ch, "file-plugin:///x") == "objects:file-plugin:///x"
            assert list_first_path(ch, "file:///x") == "files:file:///x"
            assert experiment_name(ch, None) == "plugin-store"
            status = proj_grpc.ProjectsServiceStub(ch).GetRunStatus(
                proj.GetRunStatusRequest(run_id="r"), timeout=5
            )
            assert status.message == "local-runner:r"
    finally:
        gw.stop(grace=0)


def test_configured_route_overrides_an_announced_scheme(backends: dict[str, Backend]) -> None:
    gw = start_gateway(backends=[backends["files"].address])
    try:
        gw.add_route("artifacts", "file", backends["objects"].address)
        with grpc.insecure_channel(gw.address) as ch:
            assert list_first_path(ch, "file:///x") == "objects:file:///x"
    finally:
        gw.stop(grace=0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("backends: [{service: metrics, scheme: s3, address: 'h:1'}]", "'service' must be one of"),
        ("backends: [{service: artifacts, address: 'h:1'}]", "backends[0]: 'scheme'"),
        ("backends: [{service: artifacts, scheme: s3}]", "backends[0]: 'address'"),
        ("defaults: {tracking: ''}", "defaults.tracking: 'address'"),
        ("routes: []", "unknown key(s) routes"),
        ("backends: [oops", "not valid YAML"),
    ],
)
def test_malformed_config_is_refused_naming_the_entry(tmp_path, text: str, message: str) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(text)
    with pytest.raises(GatewayConfigError) as caught:
        load_config(routes)
    assert message in str(caught.value)


def test_backend_not_up_yet_is_picked_up_on_a_later_call(backends: dict[str, Backend]) -> None:
    late = start_artifacts("late", ["hdfs"])
    address = late.address
    late.stop()
    gw = start_gateway()
    try:
        assert gw.add_backend(address, timeout=0.2) is False
        assert gw.discovery.pending == [address]
        revived = start_artifacts_on(address)
        try:
            with grpc.insecure_channel(gw.address) as ch:
                assert list_first_path(ch, "hdfs://nn/x") == "late-again:hdfs://nn/x"
            assert gw.discovery.pending == []
        finally:
            revived.stop()
    finally:
        gw.stop(grace=0)


def test_the_gateway_is_ready_only_once_it_can_route_what_it_was_told_to_discover() -> None:
    """A readiness probe alone (no call) brings a gateway started before its backend to
    SERVING: before that it says NOT_SERVING, so no load balancer sends it traffic."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    late = start_artifacts("late", ["hdfs"])
    address = late.address
    late.stop()
    gw = start_gateway(backends=[address], discover_timeout=0.2)
    artifacts = art.DESCRIPTOR.services_by_name["ArtifactsService"].full_name

    def status(ch: grpc.Channel, service: str = "") -> str:
        answer = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))

    try:
        with grpc.insecure_channel(gw.address) as ch:
            assert (status(ch), status(ch, artifacts)) == ("NOT_SERVING", "NOT_SERVING")
            revived = start_artifacts_on(address)
            try:
                deadline = time.monotonic() + 10
                while status(ch) != "SERVING":
                    assert time.monotonic() < deadline, "the gateway never became ready"
                    time.sleep(0.2)
                assert status(ch, artifacts) == "SERVING"
                # A service no backend serves is not routable, so not SERVING either.
                tracking = trk.DESCRIPTOR.services_by_name["TrackingService"].full_name
                assert status(ch, tracking) == "NOT_SERVING"
            finally:
                revived.stop()
    finally:
        gw.stop(grace=0)


def start_artifacts_on(address: str) -> Backend:
    """An artifacts backend on a given address (the port a stopped one had)."""
    from gateway_backends import NamedArtifacts, Recorder

    from mlgrid_services.common.server import ServedService, start_server

    recorder = Recorder("late-again")
    servicer = NamedArtifacts(recorder)
    host, port = address.rsplit(":", 1)
    served = ServedService(
        art.DESCRIPTOR.services_by_name["ArtifactsService"].full_name,
        lambda server: art_grpc.add_ArtifactsServiceServicer_to_server(servicer, server),
        ["hdfs"],
    )
    return Backend(recorder, start_server([served], host=host, port=int(port)))


def test_a_busy_public_port_is_refused_not_shared() -> None:
    first = start_gateway()
    try:
        with pytest.raises(OSError, match="could not bind the gateway"):
            start_gateway(port=first.port)
    finally:
        first.stop(grace=0)
