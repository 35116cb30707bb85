"""The projects service as a ServiceApp: ``create(config)`` for every way mlgrid hosts it.

Knobs beyond ServiceConfig, read from the environment:
``MLGRID_PROJECTS_STORE_URI`` (database of the run leases its replicas share; default the
tracking store when that is PostgreSQL or MySQL, else a SQLite file beside the SQLite tracking
file; see :func:`lease_store_uri`),
``MLGRID_PROJECTS_STATE_DIR`` (default ~/.mlgrid/projects), ``MLGRID_PROJECTS_LEASE_SECONDS``
(how long a lease lasts unrenewed, default 30),
``MLGRID_PROJECTS_KILL_GRACE`` (seconds between SIGTERM and SIGKILL on cancel, default 10),
``MLGRID_PROJECTS_KEEP_WORKDIRS`` (keep working copies after runs end, for debugging),
``MLGRID_PROJECTS_WORK_DIR`` (where working copies go), ``MLGRID_ENV_ROOT`` (environment cache).
"""

from __future__ import annotations

from pathlib import Path

import grpc

from mlgrid import environment as env
from mlgrid.api.projects.v1 import projects_service_pb2 as pb
from mlgrid.api.projects.v1 import projects_service_pb2_grpc as pb_grpc
from mlgrid.environment import MLGRID_PROJECTS_ALLOW_LOCAL_PATHS, MLGRID_PROJECTS_RUN_USER
from mlgrid.exceptions import InvalidParameterValue
from mlgrid_services.common.app import ServiceApp
from mlgrid_services.common.auth.run_tokens import RunTokens
from mlgrid_services.common.auth.runtime import auth_runtime
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.server import ServedService

from .access_rules import projects_rules
from .leases import LeaseStore, scope_of
from .runner import ProjectRunner
from .servicer import ProjectsServicer
from .tracking_client import TrackingClient

__all__ = ["SERVICE_NAME", "create", "create_runner", "default_state_dir", "lease_store_uri"]

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ProjectsService"].full_name


#: Tracking stores whose database the replicas of the projects service share for their leases.
_SERVER_DATABASES = ("postgresql", "postgres", "mysql", "mariadb")


def default_state_dir() -> Path:
    """``MLGRID_PROJECTS_STATE_DIR``, else ``~/.mlgrid/projects``."""
    raw = env.MLGRID_PROJECTS_STATE_DIR.get()
    return Path(raw).expanduser() if raw else Path.home() / ".mlgrid" / "projects"


def lease_store_uri(config: ServiceConfig, state_dir: Path | None = None) -> str:
    """Where the run leases live, one database per tracking store: ``state_dir``'s SQLite file
    when one is given (a private service), else MLGRID_PROJECTS_STORE_URI, else the tracking
    database if it is a server every replica reaches, else a SQLite file beside the SQLite
    tracking file (replicas on one host share it; two stacks on other files do not), else one
    in the default state directory named by a digest of the tracking store URI."""
    if state_dir is not None:
        return _sqlite_file(state_dir, "leases.db")
    explicit = env.MLGRID_PROJECTS_STORE_URI.get()
    if explicit:
        return explicit
    scheme = config.backend_store_uri.split(":", 1)[0].split("+", 1)[0]
    if scheme in _SERVER_DATABASES:
        return config.backend_store_uri
    beside = _beside_sqlite_store(config.backend_store_uri)
    if beside is not None:
        return f"sqlite:///{beside}"
    return _sqlite_file(default_state_dir(), f"leases-{scope_of(config.backend_store_uri)[:16]}.db")


def _sqlite_file(directory: Path, name: str) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory.absolute() / name}"


def _beside_sqlite_store(store_uri: str) -> Path | None:
    """``<tracking file>-projects-leases.db`` for a SQLite tracking file whose directory this
    host sees (None for an in-memory store, or one on another host's disk)."""
    if not store_uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    try:
        database = make_url(store_uri).database
    except Exception:
        return None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database).expanduser().absolute()
    if not path.parent.is_dir():
        return None
    return path.parent / f"{path.name}-projects-leases.db"


def _legacy_lease_store_uri() -> str | None:
    """The lease file every SQLite-backed stack of this user shared before leases were kept
    per tracking store, if it exists."""
    legacy = default_state_dir() / "leases.db"
    if not legacy.is_file():
        return None
    return f"sqlite:///{legacy.absolute()}"


def _sdk_tracking_uri(config: ServiceConfig) -> str:
    """How this service reaches the stack as an SDK client (for artifact downloads)."""
    if config.public_tracking_uri:
        return config.public_tracking_uri
    if config.gateway_target:
        return f"grpc://{config.gateway_target}"
    return config.backend_store_uri


def _download(uri: str, dst: Path, tracking_uri: str) -> str:
    try:
        from mlgrid.artifacts import download_artifacts
    except ImportError as exc:
        raise InvalidParameterValue(
            f"cannot download {uri!r}: this installation has no mlgrid.artifacts.download_artifacts"
        ) from exc
    path: str = download_artifacts(artifact_uri=uri, dst_path=str(dst), tracking_uri=tracking_uri)
    return path


def _upload(artifact_uri: str, path: str, data: bytes, tracking_uri: str) -> None:
    """Stores ``data`` as ``path`` below ``artifact_uri``, as any SDK client would."""
    from mlgrid.client import Client

    Client(tracking_uri=tracking_uri).log_bytes_at(artifact_uri, data, path)


def create_runner(
    config: ServiceConfig,
    *,
    state_dir: Path | None = None,
    kill_grace: float | None = None,
) -> ProjectRunner:
    """The domain object behind the service (tests build it directly, e.g. to restart it)."""
    if not config.gateway_target:
        raise ValueError(
            "the projects service reaches tracking through the gateway: set gateway_target "
            "(MLGRID_GATEWAY_TARGET)"
        )
    grace = kill_grace
    if grace is None:
        grace = env.MLGRID_PROJECTS_KILL_GRACE.get()
    sdk_uri = _sdk_tracking_uri(config)
    uri = lease_store_uri(config, state_dir)
    leases = LeaseStore(uri, config.backend_store_uri, env.MLGRID_PROJECTS_LEASE_SECONDS.get())
    legacy = _legacy_lease_store_uri() if state_dir is None else None
    if legacy is not None and legacy != uri:
        leases.import_leases(legacy)
    leases.import_state_files(state_dir or default_state_dir(), config.backend_store_uri)
    return ProjectRunner(
        TrackingClient(config.gateway_target, config.auth),
        leases,
        child_tracking_uri=sdk_uri,
        download=lambda uri, dst: _download(uri, dst, sdk_uri),
        upload=lambda uri, path, data: _upload(uri, path, data, sdk_uri),
        sdk_tracking_uri=sdk_uri,
        kill_grace=grace,
        artifact_root=config.effective_artifact_root,
        keep_workdirs=env.MLGRID_PROJECTS_KEEP_WORKDIRS.get(),
        run_tokens=RunTokens(lambda: auth_runtime(config.auth)),
    )


def create(config: ServiceConfig) -> ServiceApp:
    """The projects service: the built-in backends plus installed backend plugins."""
    if (config.gateway_target or "").startswith("unix:"):
        # Embedded in the user's own process: its projects are the user's local directories
        # (source_policy.py; a deployment keeps server-local paths off).
        MLGRID_PROJECTS_ALLOW_LOCAL_PATHS.set(MLGRID_PROJECTS_ALLOW_LOCAL_PATHS.get_raw() or "true")
        # … and its runs are the user's own programs, run as that user (as MLflow runs them).
        if not MLGRID_PROJECTS_RUN_USER.is_set:
            MLGRID_PROJECTS_RUN_USER.set("")
    runner = create_runner(config)
    runner.start_reconciling()
    servicer = ProjectsServicer(runner)

    def register(server: grpc.Server) -> None:
        pb_grpc.add_ProjectsServiceServicer_to_server(servicer, server)

    served = ServedService(
        name=SERVICE_NAME,
        register=register,
        schemes=runner.backend_names(),
        rules=projects_rules(TrackingClient(config.gateway_target or "", config.auth)),
    )
    return ServiceApp(
        services=[served],
        close=runner.close,
        serving=lambda host, port: runner.serving_at(f"{peer_host(host)}:{port}"),
    )


def peer_host(host: str) -> str:
    """The host other replicas reach a server bound on ``host`` at: for a wildcard, this host's
    own address (a pod's IP), else loopback."""
    if host not in ("0.0.0.0", "", "::", "[::]"):
        return host
    import socket

    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"
