"""``mlgrid up``: the gateway and every available service as local processes.

Each service runs as ``mlgrid server <name>`` in its own process. Children bind their ports
themselves (port 0 unless told otherwise) and print one ``mlgrid-ready`` line with the address
they bound, so there is no race for free ports. The parent keeps a pipe on each child's stdin:
if the parent dies, the children see EOF and stop, so nothing is orphaned.

Start order: every child starts at once and imports its code in parallel (most of the start
time). A service then waits for a ``go <gateway-target> <endpoint>`` line on stdin: the gateway's
address is how services reach one another. Services without a database go as soon as the
gateway is up, and so does the first database service, which migrates the schema; the other
database services go once it is ready, so concurrent processes never race on Alembic. Once a
service is ready, the gateway is told to ask it what it serves.

Faults: a child that dies is started again (after 0.5 s, doubling up to 30 s while it keeps
dying young) and the parent says so; a restarted service is announced to the gateway again, a
restarted gateway binds the same port and is told every service's address. Stopping goes in the
order that lets each process finish and report: projects first (it marks its runs through the
gateway), then the gateway (its calls in flight finish), then the other services.

This module is also imported by the children for the line protocol; it keeps the services'
code (SQLAlchemy, cloud clients) out of the parent process, which only supervises.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlgrid import environment as settings
from mlgrid.uris import redact_credentials

#: Line a child prints once it serves: ``mlgrid-ready {"name": ..., "address": ..., "pid": ...}``.
READY = "mlgrid-ready"
#: Line the gateway prints once it has asked a backend what it serves.
ROUTED = "mlgrid-routed"

#: Services that use the SQL store; they start after the migrations.
DATABASE_SERVICES = frozenset({"tracking", "registry"})
#: Services that may run as several replicas (``mlgrid up --replicas N``): they keep no state
#: of their own beyond the shared store. Projects replicas own each run through a lease in a
#: database they share (services/projects/leases), and take over the runs of one that dies.
REPLICATED_SERVICES = frozenset({"tracking", "registry", "artifacts", "projects"})
#: Services stopped before the gateway: they report through it while they stop (projects marks
#: the runs it supervises as ended in tracking).
STOP_BEFORE_GATEWAY = ("projects",)
#: Restart delays: the first, the cap, and how long a child must live to count as healthy again.
RESTART_FIRST_DELAY = 0.5
RESTART_MAX_DELAY = 30.0
RESTART_HEALTHY_AFTER = 60.0


def announce(kind: str, **payload: Any) -> None:
    """Prints one protocol line on stdout (read by the ``mlgrid up`` parent)."""
    sys.stdout.write(f"{kind} {json.dumps(payload)}\n")
    sys.stdout.flush()


def parse_line(line: str) -> tuple[str, dict[str, Any]] | None:
    """``(kind, payload)`` of a protocol line, None for any other output."""
    kind, _, rest = line.strip().partition(" ")
    if kind not in (READY, ROUTED):
        return None
    try:
        payload = json.loads(rest)
    except json.JSONDecodeError:
        return None
    return (kind, payload) if isinstance(payload, dict) else None


def present_services() -> list[str]:
    """The services installed here, found without importing them (the parent stays small)."""
    from mlgrid_services.common.service_names import SERVICE_NAMES

    found = []
    for name in SERVICE_NAMES:
        try:
            spec = importlib.util.find_spec(f"mlgrid_services.{name}.app")
        except ImportError:
            spec = None
        if spec is not None:
            found.append(name)
    return found


def client_host(host: str) -> str:
    """The host to connect to for a server bound on ``host`` (wildcards mean loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::", "[::]") else host


class StackError(RuntimeError):
    """The stack could not start, or a child died; the message says which and why."""


@dataclass
class StackOptions:
    """What ``mlgrid up`` was asked for."""

    host: str = "127.0.0.1"
    port: int = 50051
    backend_store_uri: str = "sqlite:///mlgrid.db"
    registry_store_uri: str | None = None
    default_artifact_root: str = ""
    config_path: str | None = None
    #: Let clients open tunnels to the tracking and registry backends (services/gateway/tunnel.py)
    #: on a free port the gateway announces; False serves every call through the gateway port.
    tunnels: bool = True
    #: Let clients on this host call the tracking, registry and artifacts backends at their own
    #: loopback addresses (services/gateway/direct_routes.py); a TLS gateway never offers it.
    direct_routes: bool = True
    #: Port of MLflow's REST API on the gateway (0: any free port); None serves none.
    rest_port: int | None = None
    #: (certificate, key, client CA or None) of a TLS gateway; None: plaintext. The services
    #: then reach the gateway through its plaintext port on 127.0.0.1 (``--internal-port``), as
    #: they reach each other's ports: TLS guards what leaves this host.
    tls_files: tuple[str, str, str | None] | None = None
    #: Seconds children get to finish in-flight calls after SIGTERM before SIGKILL.
    grace: float = 10.0
    #: Seconds to wait for the whole stack to become ready.
    start_timeout: float = 60.0
    #: Processes of each service in REPLICATED_SERVICES; the gateway spreads calls over them.
    replicas: int = 1


@dataclass
class Child:
    """One child process and the lines it printed."""

    name: str
    proc: subprocess.Popen[str]
    args: list[str] = field(default_factory=list)
    address: str | None = None
    reader: threading.Thread | None = None
    started_at: float = field(default_factory=time.monotonic)
    #: Restarts in a row while it kept dying young (sets the backoff).
    restarts: int = 0
    #: When a dead child is due to start again (None: it is running).
    restart_at: float | None = None
    #: The port it served on: a restarted child binds it again, so every route stays valid.
    port: int = 0

    @property
    def service(self) -> str:
        """The service it runs ("tracking" for the replica named "tracking-2")."""
        return self.args[1] if self.args[:1] == ["server"] else self.name

    def send(self, line: str) -> None:
        stdin = self.proc.stdin
        if stdin is None:
            return
        try:
            stdin.write(line + "\n")
            stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass  # the child is gone; its exit is reported by the supervisor


@dataclass
class Stack:
    """A started stack (used by :func:`run_stack` and by tests that drive it)."""

    options: StackOptions
    endpoint: str = ""
    #: ``http://host:port`` of the gateway's MLflow REST API, "" when it serves none.
    rest_url: str = ""
    children: dict[str, Child] = field(default_factory=dict)
    events: queue.Queue[tuple[str, str | None]] = field(default_factory=queue.Queue)
    started_at: float = field(default_factory=time.monotonic)
    ready_after: float = 0.0
    #: The port the gateway bound (a restarted gateway binds it again).
    gateway_port: int = 0
    #: A TLS gateway's plaintext port on 127.0.0.1 for the services (0: none).
    internal_port: int = 0

    # -- children ------------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> Child:
        previous = self.children.get(name)
        command = [sys.executable, "-m", "mlgrid.cli.main", *args]
        proc = subprocess.Popen(
            command,
            env=self._environment(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            # Own session: a Ctrl-C in the terminal reaches only the parent, which stops the
            # children in order (gateway first) instead of all at once.
            start_new_session=True,
        )
        child = Child(name, proc, args)
        if previous is not None:
            child.restarts = previous.restarts
            child.port = previous.port
        self.children[name] = child
        child.reader = threading.Thread(
            target=self._read, args=(name, proc), name=f"read-{name}", daemon=True
        )
        child.reader.start()
        return child

    def _read(self, name: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if parse_line(line) is not None:
                self.events.put((name, line))
            else:
                sys.stdout.write(f"[{name}] {line}")
                sys.stdout.flush()
        # EOF: the child exited (or is about to). Reported once it has, and only while it is
        # still the current process of that name (not one already replaced).
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if self.children.get(name) is not None and self.children[name].proc is proc:
            self.events.put((name, None))

    def _environment(self) -> dict[str, str]:
        """Store URIs go to the children in their environment, not on their command lines,
        where any user could read a database password with ``ps``."""
        o = self.options
        env = dict(os.environ)
        env["MLGRID_BACKEND_STORE_URI"] = o.backend_store_uri
        env["MLGRID_DEFAULT_ARTIFACT_ROOT"] = o.default_artifact_root
        # A local stack serves its own machine: `mlgrid run ./project` names local directories
        # (the projects service refuses server-local paths in deployments; source_policy.py).
        env.setdefault("MLGRID_PROJECTS_ALLOW_LOCAL_PATHS", "true")
        if settings.MLGRID_AUTH.get():
            # Every process of the stack signs or checks identity assertions with one secret;
            # made here when the user set none (it lives as long as the stack).
            env.setdefault("MLGRID_AUTH_SECRET", secrets.token_urlsafe(32))
        if o.registry_store_uri:
            env["MLGRID_REGISTRY_STORE_URI"] = o.registry_store_uri
        else:
            env.pop("MLGRID_REGISTRY_STORE_URI", None)
        return env

    @staticmethod
    def _service_args(name: str) -> list[str]:
        return ["server", name, "--host", "127.0.0.1", "--port", "0", "--parent-pipe"]

    # -- waiting -------------------------------------------------------------------------------

    def _next_event(self, deadline: float, stop: threading.Event) -> tuple[str, dict[str, Any]]:
        """The next protocol line of any child; raises when one exits or time runs out."""
        while True:
            if stop.is_set():
                raise KeyboardInterrupt
            left = deadline - time.monotonic()
            if left <= 0:
                waiting = [c.name for c in self.children.values() if c.address is None]
                raise StackError(
                    f"the stack did not become ready within {self.options.start_timeout:.0f} s "
                    f"(still waiting for: {', '.join(waiting) or 'backend routes'})"
                )
            try:
                name, line = self.events.get(timeout=min(left, 0.2))
            except queue.Empty:
                continue
            if line is None:
                raise StackError(self._exit_message(name))
            parsed = parse_line(line)
            if parsed is not None:
                return name, parsed[1] | {"kind": parsed[0]}

    def _exit_message(self, name: str) -> str:
        child = self.children[name]
        try:
            code = child.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        return (
            f"the {name} process (pid {child.proc.pid}) exited with code {code}; "
            "see its messages above"
        )

    # -- start / stop --------------------------------------------------------------------------

    def start(self, available: list[str], stop: threading.Event) -> None:
        """Starts the gateway and the services; returns once all are ready and routed."""
        o = self.options
        deadline = time.monotonic() + o.start_timeout
        gateway_args = [
            "server",
            "gateway",
            "--host",
            o.host,
            "--port",
            str(o.port),
            "--parent-pipe",
        ]
        if o.config_path:
            gateway_args += ["--config", o.config_path]
        gateway_args += ["--tunnel-port", "0"] if o.tunnels else ["--no-tunnel"]
        gateway_args += ["--direct-routes"] if o.direct_routes else []
        gateway_args += ["--no-rest"] if o.rest_port is None else ["--rest-port", str(o.rest_port)]
        if o.tls_files is not None:
            cert, key, client_ca = o.tls_files
            gateway_args += ["--tls-cert", cert, "--tls-key", key, "--internal-port", "0"]
            gateway_args += ["--tls-client-ca", client_ca] if client_ca else []
        gateway = self._spawn("gateway", gateway_args)
        # Every service starts importing at once; each waits for its "go" line (which carries
        # the gateway's address) before it opens stores and binds.
        names = []
        for service in available:
            count = o.replicas if service in REPLICATED_SERVICES else 1
            for number in range(1, count + 1):
                name = service if number == 1 else f"{service}-{number}"
                self._spawn(name, self._service_args(service))
                names.append(name)
        database = [n for n in names if self.children[n].service in DATABASE_SERVICES]
        # The first database service migrates the schema; the others wait until it is ready,
        # so concurrent processes never race on Alembic.
        first_wave = [n for n in names if n not in database] + database[:1]
        second_wave = database[1:]
        routed: set[str] = set()
        while gateway.address is None or len(routed) < len(names):
            name, event = self._next_event(deadline, stop)
            kind = event["kind"]
            if kind == READY and name == "gateway":
                self.gateway_port = int(event["address"].rsplit(":", 1)[1])
                self.rest_url = event.get("rest") or ""
                scheme = "grpcs" if event.get("tls") else "grpc"
                self.endpoint = f"{scheme}://{client_host(o.host)}:{self.gateway_port}"
                # Services (and the project runs they start) use the plaintext loopback port
                # of a TLS gateway; clients elsewhere use the endpoint.
                gateway.address = event.get("internal") or event["address"]
                if event.get("internal"):
                    self.internal_port = int(event["internal"].rsplit(":", 1)[1])
                for service in first_wave:
                    self.children[service].send(self._go_line(gateway.address))
            elif kind == READY:
                self.children[name].address = event["address"]
                gateway.send(f"discover {event['address']}")
                if database[:1] == [name] and gateway.address:
                    for service in second_wave:
                        self.children[service].send(self._go_line(gateway.address))
            elif kind == ROUTED and name == "gateway":
                if not event.get("ok"):
                    raise StackError(
                        f"the gateway could not reach the backend at {event['address']}"
                    )
                routed.add(event["address"])
        self.ready_after = time.monotonic() - self.started_at

    def shown(self, available: list[str]) -> list[str]:
        """The services, with their replica counts ("tracking x3")."""
        counts = {s: sum(c.service == s for c in self.children.values()) for s in available}
        return [f"{s} x{n}" if n > 1 else s for s, n in counts.items()]

    def _go_line(self, gateway_address: str) -> str:
        """What a waiting service is told: the gateway's address, and the tracking URI its
        project runs get (the internal port's of a TLS gateway, which they reach on this host)."""
        uri = f"grpc://{gateway_address}" if self.internal_port else self.endpoint
        return f"go {gateway_address} {uri}"

    def stop(self, log: Callable[[str], None]) -> None:
        """Projects first (it reports through the gateway), then the gateway (its calls in
        flight finish), then the other services; SIGKILL after the grace period."""
        gateway = self.children.get("gateway")
        first = [c for c in self.children.values() if c.service in STOP_BEFORE_GATEWAY]
        rest = [c for c in self.children.values() if c is not gateway and c not in first]
        for group in (first, [gateway] if gateway else [], rest):
            for child in group:
                if child.proc.poll() is None:
                    child.proc.send_signal(signal.SIGTERM)
            end = time.monotonic() + self.options.grace
            for child in group:
                try:
                    child.proc.wait(timeout=max(0.0, end - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log(f"{child.name} (pid {child.proc.pid}) did not stop in time; killing it")
                    child.proc.kill()
                    child.proc.wait()
                if child.proc.stdin is not None:
                    child.proc.stdin.close()

    def supervise(self, stop: threading.Event, log: Callable[[str], None]) -> None:
        """Until a stop request: restarts children that die, with backoff, saying so."""
        while not stop.is_set():
            self._restart_due(log)
            try:
                name, line = self.events.get(timeout=0.2)
            except queue.Empty:
                continue
            child = self.children[name]
            if line is None:
                if child.restart_at is not None:
                    continue  # already scheduled
                if not stop.is_set():
                    self._schedule_restart(child, log)
                continue
            parsed = parse_line(line)
            if parsed is not None and parsed[0] == READY:
                # A TLS gateway is known to the services by its internal port.
                self._back(child, parsed[1].get("internal") or parsed[1]["address"], log)

    def _schedule_restart(self, child: Child, log: Callable[[str], None]) -> None:
        code = child.proc.poll()
        if time.monotonic() - child.started_at > RESTART_HEALTHY_AFTER:
            child.restarts = 0
        delay = min(RESTART_MAX_DELAY, RESTART_FIRST_DELAY * 2**child.restarts)
        child.restarts += 1
        child.restart_at = time.monotonic() + delay
        if child.address:
            child.port = int(child.address.rsplit(":", 1)[1])
        child.address = None
        log(
            f"mlgrid up: the {child.name} process (pid {child.proc.pid}) exited with code {code}; "
            f"restarting it in {delay:.1f} s (restart {child.restarts})"
        )

    def _restart_due(self, log: Callable[[str], None]) -> None:
        now = time.monotonic()
        for name, child in list(self.children.items()):
            if child.restart_at is None or child.restart_at > now:
                continue
            args = [*child.args]
            port = self.gateway_port if name == "gateway" else child.port
            if port:
                # The same port: clients, the services and the gateway's routes keep it.
                args[args.index("--port") + 1] = str(port)
            if name == "gateway" and self.rest_url and "--rest-port" in args:
                # MLflow clients keep the REST URL printed at start: the same port again.
                args[args.index("--rest-port") + 1] = self.rest_url.rsplit(":", 1)[1]
            if name == "gateway" and self.internal_port and "--internal-port" in args:
                # The services know the gateway by its internal port: the same one again.
                args[args.index("--internal-port") + 1] = str(self.internal_port)
            replacement = self._spawn(name, args)
            replacement.args = child.args
            gateway = self.children.get("gateway")
            if name != "gateway" and gateway is not None and gateway.address:
                replacement.send(self._go_line(gateway.address))

    def _back(self, child: Child, address: str, log: Callable[[str], None]) -> None:
        child.address = address
        if child.name == "gateway":
            for other in self.children.values():
                if other is not child and other.address:
                    child.send(f"discover {other.address}")
        else:
            gateway = self.children.get("gateway")
            if gateway is not None:
                gateway.send(f"discover {address}")
        log(f"mlgrid up: {child.name} is serving again (pid {child.proc.pid}, {address})")


def absolute_store_uri(uri: str) -> str:
    """``sqlite:///rel.db`` made absolute, so every process (and project run) opens one file."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/") and ":memory:" not in uri:
        return prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def run_stack(options: StackOptions, available: list[str], echo: Callable[[str], None]) -> int:
    """Runs the stack until SIGTERM/SIGINT or a child's death; returns the exit code."""
    options.backend_store_uri = absolute_store_uri(options.backend_store_uri)
    if options.registry_store_uri:
        options.registry_store_uri = absolute_store_uri(options.registry_store_uri)
    root = options.default_artifact_root or "mlgrid-artifacts"
    if "://" not in root and not root.startswith("file:"):
        # A plain path: absolute file URI, so every process agrees on it.
        root = Path(root).expanduser().resolve().as_uri()
    options.default_artifact_root = root
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        # From another thread: this handler runs on the main thread, which may hold the Event's
        # internal lock at that instant (see serve_until_signalled).
        threading.Thread(target=stop.set, name="stop-request", daemon=True).start()

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    stack = Stack(options)
    code = 0
    try:
        try:
            stack.start(available, stop)
        except KeyboardInterrupt:
            echo("mlgrid up: stopping before the stack was ready")
            return 0
        except StackError as exc:
            echo(f"mlgrid up: {exc}; stopping the stack")
            return 1
        echo(
            f"mlgrid is up at {stack.endpoint} ({', '.join(['gateway', *stack.shown(available)])}; "
            f"ready in {stack.ready_after:.2f} s)\n"
            f"  backend store: {redact_credentials(options.backend_store_uri)}\n"
            f"  artifact root: {options.default_artifact_root}\n"
            f"  export MLGRID_TRACKING_URI={stack.endpoint}\n"
            + (
                "  TLS on every gateway port; clients trust its CA with "
                "MLGRID_TRACKING_SERVER_CERT_PATH"
                + (
                    " and present a certificate (MLGRID_TRACKING_CLIENT_CERT_PATH)"
                    if options.tls_files and options.tls_files[2]
                    else ""
                )
                + "\n"
                if options.tls_files
                else ""
            )
            + (
                f"  MLflow REST API: {stack.rest_url} "
                f"(export MLFLOW_TRACKING_URI={stack.rest_url})\n"
                if stack.rest_url
                else ""
            )
            + "Ctrl-C stops it."
        )
        stack.supervise(stop, echo)
        echo("mlgrid up: stopping")
    finally:
        stack.stop(echo)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code
