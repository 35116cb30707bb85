"""The gateway forwards raw bytes of every call kind, with metadata and deadline, and hands
back the backend's answer (messages, status, details, trailing metadata) unchanged."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
from gateway_backends import (
    ECHO_SERVICE,
    Backend,
    EchoBackend,
    echo_forwarded,
    start_artifacts,
    start_echo,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from mlgrid._rpc_errors import from_rpc_error
from mlgrid.api.artifacts.v1 import artifacts_service_pb2 as art
from mlgrid.api.artifacts.v1 import artifacts_service_pb2_grpc as art_grpc
from mlgrid.exceptions import ResourceDoesNotExist
from mlgrid_services.gateway.app import Gateway, start_gateway


@pytest.fixture(scope="module")
def echoes() -> Iterator[dict[str, EchoBackend]]:
    started = {"a": start_echo("echo-a"), "b": start_echo("echo-b")}
    yield started
    for backend in started.values():
        backend.stop()


@pytest.fixture(scope="module")
def files() -> Iterator[Backend]:
    backend = start_artifacts("files", ["file"])
    yield backend
    backend.stop()


@pytest.fixture(scope="module")
def gateway(echoes: dict[str, EchoBackend], files: Backend) -> Iterator[Gateway]:
    gw = start_gateway(backends=[files.address], extra_services=[echo_forwarded()])
    for scheme, backend in echoes.items():
        gw.add_route("echo", scheme, backend.address)
    yield gw
    gw.stop(grace=0)


@pytest.fixture(scope="module")
def channel(gateway: Gateway) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(gateway.address) as ch:
        yield ch


def echo_message(uri: str, text: str, unknown: bytes = b"") -> bytes:
    """EchoMessage{uri, text} written by hand, plus optional bytes of an unknown field."""
    parts = b""
    for number, value in ((1, uri), (2, text)):
        data = value.encode()
        parts += bytes([number << 3 | 2, len(data)]) + data
    return parts + unknown


#: Field 15 (varint 300), which no EchoMessage declares: a re-serialising proxy could drop it.
UNKNOWN_FIELD = bytes([15 << 3 | 0, 0xAC, 0x02])


def test_unary_call_bytes_arrive_and_return_unchanged(
    channel: grpc.Channel, echoes: dict[str, EchoBackend]
) -> None:
    request = echo_message("b://x", "hello", UNKNOWN_FIELD)
    response = channel.unary_unary(f"/{ECHO_SERVICE}/Unary")(request, timeout=5)
    assert response == request
    assert echoes["b"].handler is not None and echoes["b"].handler.received[-1] == request


def test_server_streaming_call_forwards_every_message(channel: grpc.Channel) -> None:
    request = echo_message("a://x", "stream", UNKNOWN_FIELD)
    responses = list(channel.unary_stream(f"/{ECHO_SERVICE}/ServerStream")(request, timeout=5))
    assert responses == [request] * 3


def test_client_streaming_call_is_routed_by_its_first_message(
    channel: grpc.Channel, echoes: dict[str, EchoBackend]
) -> None:
    # Only the first message names the backend; the rest follow it there.
    requests = [echo_message("a://x", "one"), echo_message("", "two"), echo_message("", "three")]
    response = channel.stream_unary(f"/{ECHO_SERVICE}/ClientStream")(iter(requests), timeout=5)
    assert response == b"".join(requests)
    assert echoes["a"].recorder.seen[-1].method == "ClientStream"


def test_bidi_streaming_call_forwards_both_ways(
    channel: grpc.Channel, echoes: dict[str, EchoBackend]
) -> None:
    requests = [echo_message("b://y", f"m{i}", UNKNOWN_FIELD) for i in range(5)]
    responses = list(channel.stream_stream(f"/{ECHO_SERVICE}/Bidi")(iter(requests), timeout=5))
    assert responses == requests
    assert echoes["b"].recorder.seen[-1].method == "Bidi"


def test_upload_stream_of_the_artifacts_contract(channel: grpc.Channel, files: Backend) -> None:
    chunks = [art.UploadArtifactRequest(artifact_uri="file:///root", path="model.pkl", data=b"ab")]
    chunks += [art.UploadArtifactRequest(data=b"cd"), art.UploadArtifactRequest(data=b"ef")]
    response = art_grpc.ArtifactsServiceStub(channel).UploadArtifact(iter(chunks), timeout=5)
    assert response.file.path == "files:model.pkl"
    assert response.file.file_size == 6


def test_backend_error_arrives_with_code_details_and_error_info(channel: grpc.Channel) -> None:
    stub = art_grpc.ArtifactsServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListArtifacts(
            art.ListArtifactsRequest(artifact_uri="file:///r", path="missing"), timeout=5
        )
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == "no artifact 'missing' under file:///r"
    typed = from_rpc_error(caught.value)
    assert isinstance(typed, ResourceDoesNotExist)
    assert typed.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_error_in_the_middle_of_a_stream_arrives_after_the_messages_before_it(
    channel: grpc.Channel,
) -> None:
    stub = art_grpc.ArtifactsServiceStub(channel)
    received = []
    with pytest.raises(grpc.RpcError) as caught:
        request = art.DownloadArtifactsRequest(artifact_uri="file:///r", path="fail-midway")
        for message in stub.DownloadArtifacts(request, timeout=5):
            received.append(message)
    assert [m.data for m in received[1:]] == [b"abc", b"def", b"ghi"]
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert isinstance(from_rpc_error(caught.value), ResourceDoesNotExist)


def test_backend_sees_the_callers_remaining_deadline(channel: grpc.Channel, files: Backend) -> None:
    stub = art_grpc.ArtifactsServiceStub(channel)
    stub.ListArtifacts(art.ListArtifactsRequest(artifact_uri="file:///d"), timeout=3.0)
    remaining = files.recorder.seen[-1].time_remaining
    # gRPC rounds deadlines on the wire up to a few tens of milliseconds.
    assert remaining is not None and 2.0 < remaining <= 3.1
    stub.ListArtifacts(art.ListArtifactsRequest(artifact_uri="file:///d"))
    assert files.recorder.seen[-1].time_remaining is None


def test_expired_deadline_ends_the_call_at_the_callers_deadline(channel: grpc.Channel) -> None:
    stub = art_grpc.ArtifactsServiceStub(channel)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListArtifacts(
            art.ListArtifactsRequest(artifact_uri="file:///d", path="slow:1.5"), timeout=0.3
        )
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 1.2


def test_caller_metadata_is_forwarded_but_internal_keys_are_not(
    channel: grpc.Channel, files: Backend
) -> None:
    stub = art_grpc.ArtifactsServiceStub(channel)
    metadata = [
        ("x-team", "vision"),
        ("x-trace-bin", b"\x00\x01\x02"),
        ("mlgrid-internal-caller", "spoofed"),
    ]
    stub.ListArtifacts(
        art.ListArtifactsRequest(artifact_uri="file:///m"), metadata=metadata, timeout=5
    )
    seen = files.recorder.seen[-1].metadata
    assert seen["x-team"] == "vision"
    assert seen["x-trace-bin"] == b"\x00\x01\x02"
    assert "mlgrid-internal-caller" not in seen


def test_gateway_answers_health_for_itself_and_each_forwarded_service(
    channel: grpc.Channel,
) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    serving, not_serving = (
        health_pb2.HealthCheckResponse.SERVING,
        health_pb2.HealthCheckResponse.NOT_SERVING,
    )
    # SERVING means "can route": the gateway itself (every backend it was given answered) and
    # each service it has a backend for; the others (no backend here) are NOT_SERVING.
    for service, expected in (
        ("", serving),
        ("mlgrid.api.artifacts.v1.ArtifactsService", serving),
        ("mlgrid.api.tracking.v1.TrackingService", not_serving),
        ("mlgrid.api.projects.v1.ProjectsService", not_serving),
    ):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == expected, service


def test_reflection_lists_the_forwarded_services(channel: grpc.Channel) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
    )
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {
        "mlgrid.api.tracking.v1.TrackingService",
        "mlgrid.api.artifacts.v1.ArtifactsService",
        "mlgrid.api.registry.v1.RegistryService",
        "mlgrid.api.projects.v1.ProjectsService",
        "grpc.health.v1.Health",
    } <= names
    # The forwarded contracts can be described from the gateway alone (grpcurl, Postman).
    responses = reflection.ServerReflectionInfo(
        iter(
            [
                reflection_pb2.ServerReflectionRequest(
                    file_containing_symbol="mlgrid.api.tracking.v1.TrackingService"
                )
            ]
        ),
        timeout=5,
    )
    described = [r.file_descriptor_response.file_descriptor_proto for r in responses]
    assert described and described[0]


def test_unknown_method_is_unimplemented(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary("/mlgrid.api.tracking.v1.TrackingService/NoSuchCall")(b"", timeout=5)
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
