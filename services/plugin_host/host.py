"""``mlgrid plugin serve``: a plugin class served as its own process, behind the gateway.

The plugin is wrapped in the contract of the service whose interface it implements (found from
its base class) by reusing that service's own servicer and domain with the plugin instance as
the store / repository / backend, so it validates, answers and fails exactly like the built-in
service. The process announces the plugin's scheme through BackendInfoService, so a gateway can
learn it, or route it from its config file (``(service, scheme) -> address``).

This module is glue, not a service: it imports the services it wraps (each lazily).
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from mlgrid import environment as env
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.plugins import ENTRY_POINT_GROUPS, SchemeRegistry
from mlgrid.uris import uri_scheme
from mlgrid_services.common.app import ServiceApp
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.server import (
    RunningServer,
    ServedService,
    serve_until_signalled,
    start_server,
)
from mlgrid_services.common.store_router import StoreRouter

log = logging.getLogger(__name__)

#: service -> (module, class) of the interface a plugin for it subclasses.
INTERFACES: dict[str, tuple[str, str]] = {
    "tracking": ("mlgrid.store.tracking_store", "AbstractTrackingStore"),
    "artifacts": ("mlgrid.artifacts.repository", "ArtifactRepository"),
    "registry": ("mlgrid.registry.store", "AbstractRegistryStore"),
    "projects": ("mlgrid.projects.backend", "ProjectBackend"),
}
SERVICES: tuple[str, ...] = tuple(INTERFACES)


def _interface(service: str) -> type:
    module, name = INTERFACES[service]
    interface: type = getattr(importlib.import_module(module), name)
    return interface


def load_class(target: str) -> type:
    """The class named ``module:Class`` (``module:Outer.Inner`` works too)."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise InvalidParameterValue(
            f"plugin {target!r} must be given as 'module:Class', e.g. 'my_plugin:MyStore'"
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise InvalidParameterValue(
            f"plugin {target!r}: module {module_name!r} failed to import: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise InvalidParameterValue(
                f"plugin {target!r}: module {module_name!r} has no attribute {attribute!r}"
            ) from None
    if not isinstance(obj, type):
        raise InvalidParameterValue(
            f"plugin {target!r} is a {type(obj).__name__}, not a class: name the plugin class"
        )
    return obj


def detect_service(cls: type, service: str | None = None) -> str:
    """The service whose interface ``cls`` implements (checked against ``service`` if given)."""
    allowed = ", ".join(f"{module}.{name} ({svc})" for svc, (module, name) in INTERFACES.items())
    if service is not None:
        if service not in INTERFACES:
            raise InvalidParameterValue(f"service {service!r} is not one of {', '.join(SERVICES)}")
        if not issubclass(cls, _interface(service)):
            module, name = INTERFACES[service]
            raise InvalidParameterValue(
                f"plugin class {cls.__module__}.{cls.__qualname__} does not subclass "
                f"{module}.{name}, which a {service} plugin must"
            )
        return service
    found = [svc for svc in SERVICES if issubclass(cls, _interface(svc))]
    if not found:
        raise InvalidParameterValue(
            f"plugin class {cls.__module__}.{cls.__qualname__} implements no mlgrid plugin "
            f"interface; it must subclass one of {allowed}"
        )
    if len(found) > 1:
        raise InvalidParameterValue(
            f"plugin class {cls.__module__}.{cls.__qualname__} implements several interfaces "
            f"({', '.join(found)}); choose one with --service"
        )
    return found[0]


def check_scheme(scheme: str) -> str:
    """A URI scheme (RFC 3986 characters) or backend name, lower-cased."""
    cleaned = scheme.strip().lower()
    if (
        not cleaned
        or not cleaned[0].isalpha()
        or not all(c.isalnum() or c in "+-." for c in cleaned)
    ):
        raise InvalidParameterValue(
            f"scheme {scheme!r} is not allowed: it must start with a letter and hold only "
            "letters, digits, '+', '-' and '.'"
        )
    return cleaned


# -- one builder per service: the service's own servicer over the plugin instance ---------------


def _tracking(cls: type, scheme: str, config: ServiceConfig, store_uri: str | None) -> ServiceApp:
    from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc
    from mlgrid_services.tracking.app import SERVICE_NAME
    from mlgrid_services.tracking.domain import TrackingDomain
    from mlgrid_services.tracking.servicer import TrackingServicer

    def open_domain(uri: str) -> tuple[Any, Callable[[], None]]:
        # The built-in convention (services/tracking/store): cls(store_uri, default_root).
        store = cls(uri, config.effective_artifact_root)
        return TrackingDomain(store), getattr(store, "close", lambda: None)

    domains = StoreRouter(
        open_domain,
        default_uri=store_uri,
        opened_on_request=[scheme],
        what="tracking plugin service",
    )
    servicer = TrackingServicer(domains)

    def register(server: grpc.Server) -> None:
        tracking_service_pb2_grpc.add_TrackingServiceServicer_to_server(servicer, server)

    return ServiceApp([ServedService(SERVICE_NAME, register, [scheme])], close=domains.close)


def _registry(cls: type, scheme: str, config: ServiceConfig, store_uri: str | None) -> ServiceApp:
    from mlgrid.api.registry.v1 import registry_service_pb2_grpc
    from mlgrid_services.registry.app import SERVICE_NAME
    from mlgrid_services.registry.domain import Registry
    from mlgrid_services.registry.servicer import RegistryServicer
    from mlgrid_services.registry.sources import TrackingRunLookup

    runs = TrackingRunLookup(config.gateway_target)

    def open_registry(uri: str) -> tuple[Any, Callable[[], None]]:
        store = cls(uri)
        return Registry(store, runs), getattr(store, "close", lambda: None)

    registries = StoreRouter(
        open_registry,
        default_uri=store_uri,
        opened_on_request=[scheme],
        what="registry plugin service",
    )
    servicer = RegistryServicer(registries)

    def register(server: grpc.Server) -> None:
        registry_service_pb2_grpc.add_RegistryServiceServicer_to_server(servicer, server)

    def close() -> None:
        registries.close()
        runs.close()

    return ServiceApp([ServedService(SERVICE_NAME, register, [scheme])], close=close)


def _artifacts(cls: type, scheme: str, config: ServiceConfig, store_uri: str | None) -> ServiceApp:
    from mlgrid.api.artifacts.v1 import artifacts_service_pb2_grpc
    from mlgrid_services.artifacts.app import SERVICE_NAME
    from mlgrid_services.artifacts.domain import ArtifactsDomain
    from mlgrid_services.artifacts.servicer import ArtifactsServicer
    from mlgrid_services.common.location_policy import policy_for

    # Only the plugin's scheme: a URI of any other scheme is refused naming this one.
    repositories: SchemeRegistry[Any] = SchemeRegistry(
        ENTRY_POINT_GROUPS["artifact_repository"],
        "artifact repository",
        {scheme: cls},
        discover=False,
    )
    servicer = ArtifactsServicer(ArtifactsDomain(policy_for(config), repositories))

    def register(server: grpc.Server) -> None:
        artifacts_service_pb2_grpc.add_ArtifactsServiceServicer_to_server(servicer, server)

    return ServiceApp([ServedService(SERVICE_NAME, register, [scheme])])


def _projects(cls: type, scheme: str, config: ServiceConfig, store_uri: str | None) -> ServiceApp:
    from mlgrid.api.projects.v1 import projects_service_pb2_grpc
    from mlgrid_services.projects.app import SERVICE_NAME, create_runner
    from mlgrid_services.projects.servicer import ProjectsServicer

    if not config.gateway_target:
        raise InvalidParameterValue(
            "a project backend plugin creates its runs through the tracking service: give the "
            "gateway's address with --gateway host:port (or MLGRID_GATEWAY_TARGET)"
        )
    # A private state directory: the records of the built-in projects service are not ours to
    # reconcile (that would kill its runs).
    state_dir = Path(tempfile.mkdtemp(prefix="mlgrid-plugin-projects-"))
    runner = create_runner(config, state_dir=state_dir)
    runner.backends.register(scheme, cls)
    servicer = ProjectsServicer(runner)

    def register(server: grpc.Server) -> None:
        projects_service_pb2_grpc.add_ProjectsServiceServicer_to_server(servicer, server)

    def close() -> None:
        runner.close()
        shutil.rmtree(state_dir, ignore_errors=True)

    return ServiceApp([ServedService(SERVICE_NAME, register, [scheme])], close=close)


_BUILDERS: dict[str, Callable[[type, str, ServiceConfig, str | None], ServiceApp]] = {
    "tracking": _tracking,
    "artifacts": _artifacts,
    "registry": _registry,
    "projects": _projects,
}


@dataclass
class PluginService:
    """A plugin served by this process."""

    service: str
    scheme: str
    cls: type
    app: ServiceApp
    running: RunningServer

    @property
    def address(self) -> str:
        return self.running.address

    def stop(self, grace: float | None = 1.0) -> None:
        self.running.stop(grace)
        self.app.close()


def build_plugin_app(
    cls: type,
    scheme: str,
    *,
    service: str | None = None,
    config: ServiceConfig | None = None,
    store_uri: str | None = None,
) -> tuple[str, ServiceApp]:
    """The service contract around ``cls``: ``(service name, app)``."""
    scheme = check_scheme(scheme)
    service = detect_service(cls, service)
    if store_uri is not None and service not in ("tracking", "registry"):
        raise InvalidParameterValue(
            f"--store-uri applies to tracking and registry plugins, not to {service} plugins"
        )
    if store_uri is not None and uri_scheme(store_uri) != scheme:
        raise InvalidParameterValue(
            f"store URI {store_uri!r} does not have the plugin's scheme {scheme!r}"
        )
    return service, _BUILDERS[service](cls, scheme, config or ServiceConfig.from_env(), store_uri)


def start_plugin_service(
    target: str | type,
    scheme: str,
    *,
    service: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    config: ServiceConfig | None = None,
    store_uri: str | None = None,
) -> PluginService:
    """Loads ``target`` (``module:Class`` or a class) and serves it on ``host:port``."""
    cls = load_class(target) if isinstance(target, str) else target
    service, app = build_plugin_app(
        cls, scheme, service=service, config=config, store_uri=store_uri
    )
    try:
        running = start_server(app.services, host=host, port=port)
    except BaseException:
        app.close()
        raise
    log.info("serving %s plugin %s for scheme %r on %s", service, cls, scheme, running.address)
    return PluginService(service, check_scheme(scheme), cls, app, running)


def serve_plugin(
    target: str,
    scheme: str,
    *,
    service: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    config: ServiceConfig | None = None,
    store_uri: str | None = None,
    grace: float = 10.0,
    echo: Callable[[str], None] = print,
) -> None:
    """The main of ``mlgrid plugin serve``: serves until SIGTERM/SIGINT."""
    from mlgrid_services.stack import READY, announce, client_host

    logging.basicConfig(
        level=env.MLGRID_LOG_LEVEL.get().upper(),
        format=f"%(asctime)s [plugin {scheme}] %(levelname)s %(name)s: %(message)s",
    )
    plugin = start_plugin_service(
        target, scheme, service=service, host=host, port=port, config=config, store_uri=store_uri
    )
    address = f"{client_host(host)}:{plugin.running.port}"
    echo(
        f"mlgrid plugin {target} serves the {plugin.service} service for scheme "
        f"{plugin.scheme!r} on {address}"
    )
    announce(
        READY,
        name=f"plugin:{plugin.service}:{plugin.scheme}",
        address=address,
        pid=os.getpid(),
        service=plugin.service,
        scheme=plugin.scheme,
    )
    serve_until_signalled(plugin.running, grace=grace, on_stop=plugin.app.close)
