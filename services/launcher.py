"""Starting mlgrid services in a process: embedded in the SDK's process, or one per process.

* :func:`start_embedded` backs the SDK's embedded mode (a tracking URI that is not
  ``grpc://``): the services run in this process and the SDK calls them through an in-process
  channel (services/common/inprocess.py). Each service starts on its first call. There is no
  gateway hop here: in-process backends serve every scheme they know themselves (built-in and
  plugin schemes alike), so the router has nothing to choose.
* :func:`serve_service` is the main of ``mlgrid server <service>``.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import grpc

from mlgrid import environment as env
from mlgrid_services.common import process_role
from mlgrid_services.common.app import (
    GRPC_SERVICES,
    SERVICE_NAMES,
    ServiceApp,
    create_service_app,
    service_module,
)
from mlgrid_services.common.auth.settings import AuthSettings, check_exposure
from mlgrid_services.common.config import ServiceConfig, default_artifact_root
from mlgrid_services.common.inprocess import HandlerRecorder, InProcessChannel, InProcessRpcError
from mlgrid_services.common.server import (
    RunningServer,
    call_interceptors,
    serve_until_signalled,
    start_server,
)
from mlgrid_services.stack import READY, ROUTED, absolute_store_uri, announce, client_host

if TYPE_CHECKING:
    from mlgrid_services.gateway.tls import TlsSettings

log = logging.getLogger(__name__)

#: Services that never call another service: they start without the private socket. The
#: others (the registry asks tracking about runs, projects asks tracking) reach the services
#: they need over that socket, so the first of them to start serves every service on it.
SELF_CONTAINED = frozenset({"tracking", "artifacts"})


def _stopped_error() -> InProcessRpcError:
    return InProcessRpcError(
        grpc.StatusCode.UNAVAILABLE, "the embedded mlgrid services of this process were stopped"
    )


class EmbeddedStack(grpc.GenericRpcHandler):
    """The services of this process, each started on its first call.

    ``channel`` runs calls in the caller's thread. ``target`` (a private ``unix:`` gRPC address)
    serves every service over a socket; it starts when first asked for, or when a service that
    calls others starts.
    """

    def __init__(self, config: ServiceConfig, socket_dir: str) -> None:
        self.config = config
        self._socket_dir = socket_dir
        self._target = f"unix:{socket_dir}/grpc.sock"
        self._apps: dict[str, ServiceApp] = {}
        self._handlers: dict[str, list[grpc.GenericRpcHandler]] = {}
        self._missing: set[str] = set()
        self._running: RunningServer | None = None
        self._stopped = False
        self._lock = threading.Lock()
        #: The SDK's channel; embedded mode is open (auth off), as MLflow's local mode.
        self.channel: grpc.Channel = InProcessChannel([self], call_interceptors([], None))

    @property
    def services(self) -> list[str]:
        """The services started so far, in start order."""
        return list(self._apps)

    @property
    def target(self) -> str:
        """The private socket serving every service (started now if it is not yet)."""
        if self._running is None:
            with self._lock:
                self._serve_socket()
        return self._target

    # -- grpc.GenericRpcHandler: the in-process channel's way to a service --------------------

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        if self._stopped:  # e.g. a call from a thread still running at exit
            raise _stopped_error()
        method = handler_call_details.method
        name = GRPC_SERVICES.get(method[1:].partition("/")[0])
        if name is None:
            return None
        handlers = self._handlers.get(name)
        if handlers is None:
            handlers = self._start(name)
        for handler in handlers:
            found = handler.service(handler_call_details)
            if found is not None:
                return found
        return None

    def _start(self, name: str) -> list[grpc.GenericRpcHandler]:
        with self._lock:
            if self._stopped:
                raise _stopped_error()
            if name not in self._apps and name not in self._missing:
                if name in SELF_CONTAINED:
                    self._create(name)
                else:
                    self._serve_socket()
            return self._handlers.get(name, [])

    def _create(self, name: str) -> None:
        """Starts service ``name`` (lock held); an installation without it answers UNIMPLEMENTED."""
        if service_module(name) is None:
            self._missing.add(name)
            return
        app = create_service_app(name, self.config)
        recorder = HandlerRecorder()
        for served in app.services:
            served.register(recorder)  # type: ignore[arg-type]
        self._apps[name] = app
        self._handlers[name] = recorder.handlers
        log.info("embedded mlgrid: %s started", name)

    def _serve_socket(self) -> None:
        """Starts every service not yet started, and the socket serving them all (lock held)."""
        if self._running is not None:
            return
        for name in SERVICE_NAMES:
            if name not in self._apps and name not in self._missing:
                self._create(name)
        served = [s for app in self._apps.values() for s in app.services]
        self._running = start_server(served, address=self._target)
        log.info("embedded mlgrid (%s) on a private socket", ", ".join(self._apps))

    def stop(self) -> None:
        """Stops the socket (calls in flight get a second) and releases every service."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            running, apps = self._running, list(self._apps.values())
        if running is not None:
            running.stop(grace=1.0)
        close_apps(apps)
        shutil.rmtree(self._socket_dir, ignore_errors=True)


def close_apps(apps: list[ServiceApp]) -> None:
    """Closes services in reverse start order; one failing to close does not stop the rest."""
    for app in reversed(apps):
        try:
            app.close()
        except Exception:  # closing is best effort at shutdown
            log.exception("error while closing a service")


def embedded_config(tracking_uri: str, registry_uri: str | None = None) -> ServiceConfig:
    """The configuration of an embedded stack: MLGRID_* settings, the given URIs, and
    ./mlgrid-artifacts (as an absolute file URI) unless an artifact root is configured."""
    config = ServiceConfig.from_env(backend_store_uri=tracking_uri, registry_store_uri=registry_uri)
    if not config.default_artifact_root:
        config = replace(config, default_artifact_root=default_artifact_root())
    return config


def start_embedded(tracking_uri: str, registry_uri: str | None = None) -> EmbeddedStack:
    """The services for ``tracking_uri`` in this process; tracking starts now (so a store that
    cannot be opened fails here, naming it), the others on their first call."""
    config = embedded_config(tracking_uri, registry_uri)
    socket_dir = tempfile.mkdtemp(prefix="mlgrid-")
    os.chmod(socket_dir, 0o700)  # the socket is private to this user
    # Services that call other services (registry -> tracking) reach them on the private
    # socket; project runs get the tracking URI itself, so they open the same store embedded.
    # Open, as MLflow's local mode: the socket is private to this user and process.
    config = replace(
        config,
        gateway_target=f"unix:{socket_dir}/grpc.sock",
        public_tracking_uri=config.public_tracking_uri or absolute_store_uri(tracking_uri),
        auth=AuthSettings(),
    )
    stack = EmbeddedStack(config, socket_dir)
    try:
        stack._start("tracking")
    except BaseException:
        stack.stop()
        raise
    log.info("embedded mlgrid in this process, without authentication (open to it only)")
    return stack


# -- one service per process (``mlgrid server <name>``) ------------------------------------------


def _configure_logging(name: str) -> None:
    logging.basicConfig(
        level=env.MLGRID_LOG_LEVEL.get().upper(),
        format=f"%(asctime)s [{name}] %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration step


def _watch_parent(on_line: Callable[[str], None] | None = None) -> None:
    """Under ``mlgrid up``: stdin is a pipe from the parent; its end (parent gone) stops us."""

    def watch() -> None:
        for line in sys.stdin:
            if on_line is not None and line.strip():
                on_line(line.strip())
        log.info("parent process went away, stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _wait_for_go(config: ServiceConfig) -> ServiceConfig:
    """Under ``mlgrid up``: waits for ``go <gateway-target> <endpoint>`` from the parent."""
    line = sys.stdin.readline()
    parts = line.split()
    if not parts or parts[0] != "go" or len(parts) < 2:
        raise SystemExit(0 if not line else f"unexpected line from mlgrid up: {line!r}")
    return replace(
        config,
        gateway_target=parts[1],
        public_tracking_uri=config.public_tracking_uri or (parts[2] if len(parts) > 2 else None),
    ).with_gateway(parts[1])


def serve_service(
    name: str,
    config: ServiceConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    parent_pipe: bool = False,
    grace: float = 10.0,
) -> None:
    """Runs service ``name`` until SIGTERM/SIGINT; prints its ready line once it serves.

    With ``parent_pipe`` (under ``mlgrid up``) the service imports its code first, then waits
    for the parent's go-ahead, so imports overlap with the other services' start.
    """
    _configure_logging(name)
    process_role.long_lived_service = True  # one-off start work runs in children (Alembic)
    if parent_pipe:
        importlib.import_module(f"mlgrid_services.{name}.app")
        config = _wait_for_go(config)
    from mlgrid_services.common.auth.runtime import auth_runtime

    check_exposure(f"mlgrid {name}", host, config.auth, env.MLGRID_ALLOW_OPEN.get())
    runtime = auth_runtime(config.auth)
    app = create_service_app(name, config)
    try:
        running = start_server(app.services, host=host, port=port, auth=runtime)
    except BaseException:
        app.close()
        raise
    app.serving(host, running.port)
    announce(READY, name=name, address=f"{client_host(host)}:{running.port}", pid=os.getpid())
    if parent_pipe:
        _watch_parent()
    serve_until_signalled(running, grace=grace, on_stop=app.close)


def serve_gateway(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    config_path: str | None = None,
    backends: list[str] | None = None,
    parent_pipe: bool = False,
    grace: float = 10.0,
    tunnel_port: int | None = None,
    rest_port: int | None = None,
    rest_artifacts_root: str | None = None,
    tls: TlsSettings | None = None,
    internal_port: int | None = None,
    direct_routes: bool = False,
) -> None:
    """Runs the gateway until SIGTERM/SIGINT (``mlgrid server gateway``).

    Under ``mlgrid up`` (``parent_pipe``) the parent sends ``discover <address>`` lines on stdin
    as the services come up, and each is answered with a ``routed`` line on stdout.
    """
    from mlgrid_services.common.config import ServiceConfig
    from mlgrid_services.gateway.app import start_gateway
    from mlgrid_services.gateway.config import load_config

    _configure_logging("gateway")
    config = load_config(config_path) if config_path else None
    services_config = ServiceConfig.from_env()
    if rest_port is not None and not rest_artifacts_root:
        # The root the services give experiments that name none: what the proxy serves.
        rest_artifacts_root = services_config.effective_artifact_root
    check_exposure("the mlgrid gateway", host, services_config.auth, env.MLGRID_ALLOW_OPEN.get())
    runtime = None
    if services_config.auth.enabled:  # the store's SQL code is loaded only when auth is on
        from mlgrid_services.common.auth.runtime import auth_runtime

        runtime = auth_runtime(services_config.auth)
    gateway = start_gateway(
        auth=runtime,
        host=host,
        port=port,
        config=config,
        backends=backends or (),
        tunnel_port=tunnel_port,
        rest_port=rest_port,
        rest_artifacts_root=rest_artifacts_root,
        tls=tls,
        internal_port=internal_port,
        direct_routes=direct_routes,
    )
    announce(
        READY,
        name="gateway",
        address=f"{client_host(host)}:{gateway.port}",
        pid=os.getpid(),
        rest=gateway.rest.url if gateway.rest is not None else None,
        tls=tls is not None,
        internal=f"127.0.0.1:{gateway.internal_port}" if gateway.internal_port else None,
    )

    def on_line(line: str) -> None:
        command, _, address = line.partition(" ")
        if command == "discover" and address:
            ok = gateway.add_backend(address, timeout=10.0)
            announce(ROUTED, address=address, ok=ok)

    if parent_pipe:
        _watch_parent(on_line)

    def on_stop() -> None:
        if gateway.rest is not None:
            gateway.rest.stop()
        if gateway.tunnel is not None:
            gateway.tunnel.stop()
        gateway.pool.close()

    serve_until_signalled(gateway.running, grace=grace, on_stop=on_stop)
