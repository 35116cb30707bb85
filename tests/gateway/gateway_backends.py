"""Small real backends for the gateway tests: real gRPC servers on port 0 serving the real
contracts (or, for the one call kind no mlgrid contract has yet, a bidi echo contract built from
a descriptor at run time). Each answers with its own name and records what it saw, so a test can
tell where a call went and what arrived there (metadata, remaining deadline, raw bytes)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool

from mlgrid.api.artifacts.v1 import artifacts_service_pb2 as art
from mlgrid.api.artifacts.v1 import artifacts_service_pb2_grpc as art_grpc
from mlgrid.api.projects.v1 import projects_service_pb2 as proj
from mlgrid.api.projects.v1 import projects_service_pb2_grpc as proj_grpc
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.api.tracking.v1 import tracking_service_pb2 as trk
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as trk_grpc
from mlgrid.exceptions import ResourceDoesNotExist
from mlgrid_services.common.server import RunningServer, ServedService, start_server
from mlgrid_services.gateway.methods import ForwardedService, RouteBy, describe


@dataclass
class Seen:
    """What one backend call observed."""

    method: str
    metadata: dict[str, Any]
    time_remaining: float | None


@dataclass
class Recorder:
    name: str
    seen: list[Seen] = field(default_factory=list)

    def record(self, method: str, context: grpc.ServicerContext) -> None:
        remaining = context.time_remaining()
        self.seen.append(
            Seen(
                method,
                dict(context.invocation_metadata() or ()),
                None if remaining is None or remaining > 1e7 else remaining,
            )
        )


class NamedArtifacts(art_grpc.ArtifactsServiceServicer):
    """Answers with its name. ``path`` steers it: "missing" fails with NOT_FOUND + ErrorInfo,
    "slow:<seconds>" sleeps first (for deadlines and graceful shutdown)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def ListArtifacts(self, request, context):
        self.recorder.record("ListArtifacts", context)
        if request.path == "missing":
            raise ResourceDoesNotExist(f"no artifact 'missing' under {request.artifact_uri}")
        if request.path.startswith("slow:"):
            time.sleep(float(request.path.split(":", 1)[1]))
        return art.ListArtifactsResponse(
            files=[art.FileInfo(path=f"{self.recorder.name}:{request.artifact_uri}")]
        )

    def UploadArtifact(self, request_iterator, context):
        self.recorder.record("UploadArtifact", context)
        first = None
        digest = hashlib.sha256()
        size = 0
        for message in request_iterator:
            first = first or message
            digest.update(message.data)
            size += len(message.data)
        path = first.path if first else ""
        return art.UploadArtifactResponse(
            file=art.FileInfo(path=f"{self.recorder.name}:{path}", file_size=size),
            sha256=digest.hexdigest(),
        )

    def DownloadArtifacts(self, request, context):
        self.recorder.record("DownloadArtifacts", context)
        yield art.DownloadArtifactsResponse(
            path=f"{self.recorder.name}:{request.path}", file_size=9
        )
        for chunk in (b"abc", b"def", b"ghi"):
            yield art.DownloadArtifactsResponse(data=chunk)
        if request.path == "fail-midway":
            raise ResourceDoesNotExist("the file vanished while it was being read")


class NamedProjects(proj_grpc.ProjectsServiceServicer):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def GetRunStatus(self, request, context):
        self.recorder.record("GetRunStatus", context)
        return proj.GetRunStatusResponse(message=f"{self.recorder.name}:{request.run_id}")


class NamedTracking(trk_grpc.TrackingServiceServicer):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def GetExperiment(self, request, context):
        self.recorder.record("GetExperiment", context)
        return trk.GetExperimentResponse(
            experiment=tracking_pb2.Experiment(
                experiment_id=request.experiment_id, name=self.recorder.name
            )
        )


@dataclass
class Backend:
    recorder: Recorder
    server: RunningServer

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def name(self) -> str:
        return self.recorder.name

    def stop(self) -> None:
        self.server.stop(grace=0)


def _full_name(module: Any, service: str) -> str:
    return str(module.DESCRIPTOR.services_by_name[service].full_name)


def start_artifacts(name: str, schemes: list[str]) -> Backend:
    recorder = Recorder(name)
    servicer = NamedArtifacts(recorder)
    served = ServedService(
        _full_name(art, "ArtifactsService"),
        lambda server: art_grpc.add_ArtifactsServiceServicer_to_server(servicer, server),
        schemes,
    )
    return Backend(recorder, start_server([served]))


def start_projects(name: str, backends: list[str]) -> Backend:
    recorder = Recorder(name)
    servicer = NamedProjects(recorder)
    served = ServedService(
        _full_name(proj, "ProjectsService"),
        lambda server: proj_grpc.add_ProjectsServiceServicer_to_server(servicer, server),
        backends,
    )
    return Backend(recorder, start_server([served]))


def start_tracking(name: str, schemes: list[str]) -> Backend:
    recorder = Recorder(name)
    servicer = NamedTracking(recorder)
    served = ServedService(
        _full_name(trk, "TrackingService"),
        lambda server: trk_grpc.add_TrackingServiceServicer_to_server(servicer, server),
        schemes,
    )
    return Backend(recorder, start_server([served]))


# -- an echo contract with all four call kinds, forwarded as raw bytes ---------------------------

ECHO_PACKAGE = "mlgridtest.echo.v1"
ECHO_SERVICE = f"{ECHO_PACKAGE}.EchoService"
ECHO_KINDS = {
    "Unary": (False, False),
    "ServerStream": (False, True),
    "ClientStream": (True, False),
    "Bidi": (True, True),
}


def echo_descriptor() -> Any:
    """EchoService(EchoMessage{string uri = 1; string text = 2}) with one method per kind."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="mlgridtest/echo.proto", package=ECHO_PACKAGE, syntax="proto3"
    )
    message = proto.message_type.add(name="EchoMessage")
    for number, name in ((1, "uri"), (2, "text")):
        message.field.add(
            name=name,
            number=number,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
            label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        )
    service = proto.service.add(name="EchoService")
    for method, (client_streaming, server_streaming) in ECHO_KINDS.items():
        service.method.add(
            name=method,
            input_type=f".{ECHO_PACKAGE}.EchoMessage",
            output_type=f".{ECHO_PACKAGE}.EchoMessage",
            client_streaming=client_streaming,
            server_streaming=server_streaming,
        )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return pool.FindServiceByName(ECHO_SERVICE)


def echo_forwarded() -> ForwardedService:
    """The echo contract as the gateway forwards it: routed by the scheme of field 1."""
    return describe("echo", echo_descriptor(), RouteBy.URI_FIELD)


class _EchoHandler(grpc.GenericRpcHandler):
    """Raw-bytes echo: every request comes back byte for byte, tagged by nothing."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.received: list[bytes] = []
        self._lock = threading.Lock()

    def _keep(self, data: bytes) -> bytes:
        with self._lock:
            self.received.append(data)
        return data

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = details.method.rsplit("/", 1)[-1]
        if not details.method.startswith(f"/{ECHO_SERVICE}/") or method not in ECHO_KINDS:
            return None
        record = self.recorder.record

        def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
            record(method, context)
            return self._keep(request)

        def server_stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
            record(method, context)
            for _ in range(3):
                yield self._keep(request)

        def client_stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
            record(method, context)
            return b"".join(self._keep(r) for r in requests)

        def bidi(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
            record(method, context)
            for request in requests:
                yield self._keep(request)

        makers = {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        }
        return makers[method]


@dataclass
class EchoBackend(Backend):
    handler: _EchoHandler | None = None


def start_echo(name: str) -> EchoBackend:
    recorder = Recorder(name)
    handler = _EchoHandler(recorder)
    server = start_server([], generic_handlers=[handler])
    return EchoBackend(recorder, server, handler)
