"""The one seam between the SDK and the services: a gRPC channel and its stubs.

``grpc://host:port`` (or ``grpcs://``) connects to a gateway. Any other tracking URI (a
``sqlite:///`` or ``postgresql://`` store, a plugin scheme) is served *embedded*: the launcher
that ``mlgrid[server]`` provides runs the same services in this process and hands over an
in-process channel to them; the SDK calls it with the same stubs, messages and errors as a
remote stack, without a socket in between.
"""

from __future__ import annotations

import atexit
import gc
import importlib.util
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import grpc

from mlgrid import environment as env
from mlgrid._rpc_errors import from_rpc_error
from mlgrid.api.artifacts.v1 import artifacts_service_pb2_grpc
from mlgrid.api.auth.v1 import auth_service_pb2_grpc
from mlgrid.api.projects.v1 import projects_service_pb2_grpc
from mlgrid.api.registry.v1 import registry_service_pb2_grpc
from mlgrid.api.tracking.v1 import tracking_service_pb2, tracking_service_pb2_grpc
from mlgrid.exceptions import MlgridException, TemporarilyUnavailable
from mlgrid.pipeline import NOT_CARRIED, Pipeline
from mlgrid.plugins.headers import request_header_metadata
from mlgrid.protocol import (
    AUTHORIZATION_METADATA,
    CHANNEL_OPTIONS,
    STORE_URI_METADATA,
    WORKSPACE_METADATA,
)
from mlgrid.tls import ClientTls, authorization_header, explain_tls_failure
from mlgrid.tunnels import Tunnels
from mlgrid.uris import is_gateway_uri, uri_scheme

R = TypeVar("R")


class EmbeddedStack(Protocol):
    """What the server-side launcher returns: the channel to its services, and how to stop."""

    channel: grpc.Channel

    def stop(self) -> None: ...


#: Modules of mlgrid[server]'s dependencies that every embedded stack loads. The service code
#: ships in the base wheel too, so importing it proves nothing; these are what the extra adds.
SERVER_MODULES = ("sqlalchemy", "alembic", "grpc_health", "grpc_reflection")


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pauses the cyclic garbage collector while the embedded services load, then restores it
    as it was. Loading them creates ~10^5 objects that all live on (modules, classes, functions),
    and each full collection the allocations trigger walks all of them: ~8% of a newcomer's
    whole script in instructions (callgrind), tens of ms at a time. What little garbage the
    start leaves is collected by the first collection after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _start_embedded(tracking_uri: str, registry_uri: str | None) -> EmbeddedStack:
    with _collector_paused():
        stack = _load_embedded(tracking_uri, registry_uri)
    _skip_final_collections_at_exit()
    return stack


_exit_hook_registered = False


def _skip_final_collections_at_exit() -> None:
    """At interpreter exit, after the transports are closed, freezes the objects alive then so
    that the collections Python runs while it shuts down do not walk them.

    Those collections walk every tracked object: with the embedded services loaded (SQLAlchemy,
    gRPC, the generated messages) ~0.1 s, a tenth of a newcomer's whole script, for objects
    that live until the process ends anyway. What is given up: ``__del__`` methods and weakref
    callbacks of objects in reference cycles that are already garbage at exit do not run,
    which Python does not promise either ("It is not guaranteed that __del__() methods are
    called for objects that still exist when the interpreter exits"). mlgrid's own stores,
    files and background loggers are closed or flushed explicitly before this runs."""
    global _exit_hook_registered
    if not _exit_hook_registered:
        _exit_hook_registered = True
        # atexit runs the latest registered first, so this runs before close_all (registered
        # at import): it closes the transports itself, then freezes.
        atexit.register(_close_then_freeze)


def _close_then_freeze() -> None:
    close_all()
    gc.freeze()


def _load_embedded(tracking_uri: str, registry_uri: str | None) -> EmbeddedStack:
    missing = [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]
    try:
        if missing:
            raise ImportError(f"missing {', '.join(missing)}")
        from mlgrid_services.launcher import start_embedded
    except ImportError as exc:  # the SDK-only install
        raise RuntimeError(
            f"tracking URI {tracking_uri!r} is served in-process, which needs the server "
            "components: pip install 'mlgrid[server]' (or set MLGRID_TRACKING_URI to a "
            f"grpc://host:port gateway); {exc}"
        ) from exc
    stack: EmbeddedStack = start_embedded(tracking_uri, registry_uri)
    return stack


MetadataProvider = Callable[[], list[tuple[str, str]]]


def _names_a_store() -> bool:
    """Whether tracking and registry calls name a store (``MLGRID_STORE_URI``, read per call as
    the metadata is): the gateway port then routes each call by it."""
    store = env.MLGRID_STORE_URI.get()
    return bool(store) and not is_gateway_uri(store)  # type: ignore[arg-type]


def gateway_metadata() -> list[tuple[str, str]]:
    """What every call to a gateway carries: credentials, and the store it should route to
    when the user names one (``MLGRID_STORE_URI``; else the deployment's default store). Read
    per call, so credentials rotated in the environment take effect at once."""
    metadata: list[tuple[str, str]] = []
    authorization = authorization_header()
    if authorization:
        metadata.append((AUTHORIZATION_METADATA, authorization))
    store = env.MLGRID_STORE_URI.get()
    if store:
        metadata.append((STORE_URI_METADATA, store))
    workspace = env.MLGRID_WORKSPACE.get()
    if workspace:
        metadata.append((WORKSPACE_METADATA, workspace))
    return metadata


@dataclass
class Transport:
    """A channel to a gateway (remote or embedded) with one stub per service."""

    tracking_uri: str
    registry_uri: str | None = None
    channel: grpc.Channel = field(init=False)
    _embedded: EmbeddedStack | None = field(init=False, default=None)
    #: Tunnels to the tracking and registry backends (plain grpc:// gateways only).
    _tunnels: Tunnels | None = field(init=False, default=None)
    #: Extra metadata sources (request header providers); each is called per call.
    metadata_providers: list[MetadataProvider] = field(default_factory=list)
    #: TLS settings of a ``grpcs://`` gateway (read from the environment when built).
    tls: ClientTls | None = field(init=False, default=None)
    #: The call pipeline of the tracking tunnel (pipeline.py), made at its first use.
    _pipeline: Pipeline | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if is_gateway_uri(self.tracking_uri):
            self._connect()
            _REMOTE[id(self)] = self
        else:
            self._embedded = _start_embedded(self.tracking_uri, self.registry_uri)
            self._make_stubs(self._embedded.channel)
        if self._embedded is None:
            self.metadata_providers.append(gateway_metadata)
        # Request header provider plugins (mlgrid.request_header_provider): their headers go
        # out as metadata with every call.
        self.metadata_providers.append(request_header_metadata)

    def _connect(self) -> None:
        """Opens the gateway's channel (and its tunnels, opened at their first use)."""
        parts = urlsplit(self.tracking_uri)
        target = parts.netloc
        credentials = None
        if parts.scheme == "grpcs":
            self.tls = ClientTls.from_env()
            credentials = self.tls.credentials()
            channel = grpc.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
        else:
            channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        self._tunnels = Tunnels(
            channel, parts.hostname or "", CHANNEL_OPTIONS, credentials=credentials
        )
        self._pipeline = None
        self._make_stubs(channel)

    def _make_stubs(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self._gateway_tracking = tracking_service_pb2_grpc.TrackingServiceStub(channel)
        self.artifacts = artifacts_service_pb2_grpc.ArtifactsServiceStub(channel)
        self._gateway_registry = registry_service_pb2_grpc.RegistryServiceStub(channel)
        self.projects = projects_service_pb2_grpc.ProjectsServiceStub(channel)
        self.auth = auth_service_pb2_grpc.AuthServiceStub(channel)

    @property
    def embedded(self) -> bool:
        return self._embedded is not None

    @property
    def tracking(self) -> tracking_service_pb2_grpc.TrackingServiceStub:
        """The tracking stub: the tunnel to the default store's backend when the gateway offers
        one and no store is named; else the gateway port."""
        if self._tunnels is None or _names_a_store():  # embedded: no tunnels, no setting read
            return self._gateway_tracking
        stub = self._tunnelled("tracking", tracking_service_pb2_grpc.TrackingServiceStub)
        return stub if stub is not None else self._gateway_tracking

    @property
    def registry(self) -> registry_service_pb2_grpc.RegistryServiceStub:
        """The registry stub: the tunnel to the default store's backend when the gateway offers
        one and no store is named; else the gateway port."""
        if self._tunnels is None or _names_a_store():  # embedded: no tunnels, no setting read
            return self._gateway_registry
        stub = self._tunnelled("registry", registry_service_pb2_grpc.RegistryServiceStub)
        return stub if stub is not None else self._gateway_registry

    def artifacts_for(self, artifact_uri: str) -> artifacts_service_pb2_grpc.ArtifactsServiceStub:
        """The artifacts stub for calls on ``artifact_uri``: over the tunnel of its scheme when
        the gateway offers tunnels (bulk bytes are then relayed, not re-sent by the gateway)."""
        route = f"{uri_scheme(artifact_uri)}:"
        stub = self._tunnelled("artifacts", artifacts_service_pb2_grpc.ArtifactsServiceStub, route)
        return stub if stub is not None else self.artifacts

    def _tunnelled(
        self, service: str, stub_class: Callable[[grpc.Channel], Any], route: str = ""
    ) -> Any:
        return None if self._tunnels is None else self._tunnels.stub(service, route, stub_class)

    def metadata(self) -> list[tuple[str, str]]:
        """Metadata sent with every call."""
        extra: list[tuple[str, str]] = []
        for provider in self.metadata_providers:
            extra.extend(provider())
        return extra

    def call(self, method: Callable[..., R], request: Any, timeout: float | None = None) -> R:
        """Calls a unary (or client-streaming) stub method; errors come back typed."""
        try:
            return method(request, metadata=self.metadata(), timeout=timeout)
        except grpc.RpcError as err:
            raise self._error(err) from err

    def call_tracking_write(self, name: str, request: Any) -> Any:
        """The idempotent TrackingService write ``name`` (one of :data:`PIPELINED_WRITES`):
        on the tracking tunnel's call pipeline when it can carry it, else as a call of its own;
        the caller sees the same either way."""
        pipeline = self._tracking_pipeline()
        if pipeline is not None:
            try:
                answer = pipeline.call(
                    f"/{_TRACKING_SERVICE}/{name}",
                    request,
                    PIPELINED_WRITES[name],
                    self.metadata(),
                )
            except grpc.RpcError as err:
                raise self._error(err) from err
            if answer is not NOT_CARRIED:
                return answer
        return self.call(getattr(self.tracking, name), request)

    def _tracking_pipeline(self) -> Pipeline | None:
        """The pipeline of the tracking tunnel; None without a tunnel, when calls name a store
        (they go to the gateway port) or with ``MLGRID_CALL_PIPELINE=false``."""
        if self._tunnels is None or _names_a_store() or not env.MLGRID_CALL_PIPELINE.get():
            return None
        channel = self._tunnels.channel("tracking")
        if channel is None:
            return None
        pipeline = self._pipeline
        if pipeline is None or pipeline.channel is not channel:
            pipeline = self._pipeline = Pipeline(channel)
        return pipeline

    def stream(
        self, method: Callable[..., Iterator[R]], request: Any, timeout: float | None = None
    ) -> Iterator[R]:
        """Calls a server-streaming stub method and yields its messages; errors come back typed."""
        try:
            yield from method(request, metadata=self.metadata(), timeout=timeout)
        except grpc.RpcError as err:
            raise self._error(err) from err

    def _error(self, err: grpc.RpcError) -> MlgridException:
        """The typed exception for ``err``; a TLS failure on the way to a ``grpcs://`` gateway
        says what to check instead of gRPC's "failed to connect"."""
        if (
            self.tls is not None
            and isinstance(err, grpc.Call)
            and err.code() is grpc.StatusCode.UNAVAILABLE
        ):
            target = urlsplit(self.tracking_uri).netloc
            explained = explain_tls_failure(err.details() or "", target, self.tls)
            if explained is not None:
                return TemporarilyUnavailable(explained)
        return from_rpc_error(err)

    def close(self) -> None:
        _REMOTE.pop(id(self), None)  # a forked child has nothing to reopen
        if self._pipeline is not None:
            self._pipeline.close()
        if self._tunnels is not None:
            self._tunnels.close()
        self.channel.close()
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None


_TRACKING_SERVICE = tracking_service_pb2.DESCRIPTOR.services_by_name["TrackingService"].full_name
#: The tracking writes that ride the call pipeline, and their response types: idempotent
#: (their contract says so; the server checks it) and made in loops.
PIPELINED_WRITES: dict[str, Any] = {
    "LogMetric": tracking_service_pb2.LogMetricResponse,
    "LogParam": tracking_service_pb2.LogParamResponse,
    "SetTag": tracking_service_pb2.SetTagResponse,
    "LogBatch": tracking_service_pb2.LogBatchResponse,
}

_transports: dict[tuple[str, str | None], Transport] = {}
_lock = threading.Lock()
#: The live transports to a gateway, by id (a dataclass with eq is unhashable).
_REMOTE: weakref.WeakValueDictionary[int, Transport] = weakref.WeakValueDictionary()


def _reconnect_in_child() -> None:
    """A forked child opens channels of its own. gRPC closes the connections it inherited
    ("Closed on fork"), and a child's first call on an inherited channel could meet that closing
    (about 1 call in 50 here) and fail. The parent's channels are left as they are: they are its
    own, and closing them here would only touch state gRPC has already reset."""
    for transport in list(_REMOTE.values()):
        transport._connect()


os.register_at_fork(after_in_child=_reconnect_in_child)


def get_transport(tracking_uri: str, registry_uri: str | None = None) -> Transport:
    """The process-wide transport for a tracking URI (embedded stacks start once per URI)."""
    key = (tracking_uri, registry_uri)
    with _lock:
        transport = _transports.get(key)
        if transport is None:
            transport = Transport(tracking_uri, registry_uri)
            _transports[key] = transport
        return transport


@atexit.register
def close_all() -> None:
    """Closes every transport (and stops embedded stacks)."""
    with _lock:
        transports = list(_transports.values())
        _transports.clear()
    for transport in transports:
        transport.close()
