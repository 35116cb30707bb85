"""The contracts the gateway forwards, read from the generated descriptors.

For each forwarded gRPC service: its short name (the routing table's service key), how a call
names its backend (the routing key), and each method's kind (unary or streaming on either side).
Nothing here is written by hand per RPC, so a new RPC in a proto is forwarded as soon as the
stubs are regenerated.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from google.protobuf.descriptor import ServiceDescriptor

from mlgrid.api.artifacts.v1 import artifacts_service_pb2
from mlgrid.api.auth.v1 import auth_service_pb2
from mlgrid.api.projects.v1 import projects_service_pb2
from mlgrid.api.registry.v1 import registry_service_pb2
from mlgrid.api.tracking.v1 import tracking_service_pb2
from mlgrid.retries import is_idempotent

#: Short names of the forwarded services, as used in the routing table and the config file.
SERVICE_KEYS: tuple[str, ...] = ("tracking", "artifacts", "registry", "projects", "auth")


class RouteBy(enum.Enum):
    """Where a call's routing key comes from (DESIGN.md, "Routing and plugins")."""

    #: The scheme of the URI in string field 1 of the request (artifacts: ``artifact_uri``).
    URI_FIELD = "uri_field"
    #: The name in string field 1 of the request (projects: ``backend``; "local" when empty).
    NAME_FIELD = "name_field"
    #: The scheme of the ``mlgrid-store-uri`` metadata value (tracking, registry).
    STORE_METADATA = "store_metadata"
    #: Nothing: every call goes to the service's default backend (auth: one per deployment).
    DEFAULT_ONLY = "default_only"


@dataclass(frozen=True)
class MethodKind:
    """A method's full path and whether each side streams."""

    path: str
    client_streaming: bool
    server_streaming: bool
    #: Declared in the contract (``option idempotency_level``): repeating the call changes
    #: nothing more, so the gateway may retry it on another replica.
    idempotent: bool = False


@dataclass(frozen=True)
class ForwardedService:
    """One gRPC service the gateway forwards."""

    #: Short name used in the routing table and config ("tracking", "artifacts", ...).
    key: str
    #: Fully-qualified gRPC service name.
    full_name: str
    route_by: RouteBy
    #: Routing key when the request carries none ("local" for projects); "" = default backend.
    empty_key: str
    methods: dict[str, MethodKind]
    #: Name of field 1 in the requests ("artifact_uri", "backend"), for error messages.
    first_field: str = "field 1"

    @property
    def key_field(self) -> str:
        """How users name the routing key, for error messages."""
        if self.route_by is RouteBy.STORE_METADATA:
            return "metadata 'mlgrid-store-uri'"
        if self.route_by is RouteBy.DEFAULT_ONLY:
            return "nothing (the default backend)"
        return f"field 1 ('{self.first_field}')"


def describe(
    key: str, descriptor: ServiceDescriptor, route_by: RouteBy, empty_key: str = ""
) -> ForwardedService:
    """A :class:`ForwardedService` for a service descriptor (tests use it for extra services)."""
    methods = {
        f"/{descriptor.full_name}/{m.name}": MethodKind(
            path=f"/{descriptor.full_name}/{m.name}",
            client_streaming=m.client_streaming,
            server_streaming=m.server_streaming,
            idempotent=is_idempotent(m),
        )
        for m in descriptor.methods
    }
    first_fields = {
        m.input_type.fields_by_number[1].name
        for m in descriptor.methods
        if 1 in m.input_type.fields_by_number
    }
    first_field = first_fields.pop() if len(first_fields) == 1 else "field 1"
    return ForwardedService(key, descriptor.full_name, route_by, empty_key, methods, first_field)


def builtin_services() -> list[ForwardedService]:
    """The mlgrid services (auth is served by the tracking process)."""
    return [
        describe(
            "tracking",
            tracking_service_pb2.DESCRIPTOR.services_by_name["TrackingService"],
            RouteBy.STORE_METADATA,
        ),
        describe(
            "artifacts",
            artifacts_service_pb2.DESCRIPTOR.services_by_name["ArtifactsService"],
            RouteBy.URI_FIELD,
        ),
        describe(
            "registry",
            registry_service_pb2.DESCRIPTOR.services_by_name["RegistryService"],
            RouteBy.STORE_METADATA,
        ),
        describe(
            "projects",
            projects_service_pb2.DESCRIPTOR.services_by_name["ProjectsService"],
            RouteBy.NAME_FIELD,
            empty_key="local",
        ),
        describe(
            "auth",
            auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"],
            RouteBy.DEFAULT_ONLY,
        ),
    ]


def method_index(
    services: Iterable[ForwardedService],
) -> dict[str, tuple[ForwardedService, MethodKind]]:
    """Full method path -> (service, kind), the gateway's per-call lookup."""
    return {path: (s, kind) for s in services for path, kind in s.methods.items()}
