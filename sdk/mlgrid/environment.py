"""Environment variables mlgrid reads (the SDK, the CLI and the services), declared once, typed.

Nothing else reads ``MLGRID_*`` or ``MLFLOW_*`` from ``os.environ``: code asks the variable
declared here (``env.MLGRID_X.get()``), so each setting has one name, one parser, one default
and one docstring.

Every ``MLGRID_X`` falls back to MLflow's ``MLFLOW_X`` so that jobs configured for MLflow (for
example by a project runner or a Kubernetes template) work unchanged. A value that does not
convert raises :class:`~mlgrid.exceptions.InvalidParameterValue` naming the variable, the value
and what is accepted.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"accepted values are {', '.join(sorted(_TRUE | _FALSE - {''}))}")


def _parse_str(raw: str) -> str:
    return raw


def _parse_positive_int(raw: str) -> int:
    value = int(raw.strip())
    if value <= 0:
        raise ValueError("expected an integer > 0")
    return value


def _parse_port(raw: str) -> int:
    value = int(raw.strip())
    if not 0 <= value <= 65535:
        raise ValueError("expected a port number from 0 to 65535")
    return value


def _parse_positive_float(raw: str) -> float:
    value = float(raw.strip())
    if not value > 0:
        raise ValueError("expected a number > 0")
    return value


def _parse_non_negative_float(raw: str) -> float:
    value = float(raw.strip())
    if not value >= 0:
        raise ValueError("expected a number >= 0")
    return value


_TYPE_NAMES: dict[Callable[[str], object], str] = {
    _parse_bool: "a boolean (true/false/1/0)",
    _parse_str: "a string",
    _parse_positive_int: "a positive integer",
    _parse_positive_float: "a positive number",
    _parse_port: "a port number (0: any free port)",
    _parse_non_negative_float: "a number >= 0",
}


_DERIVED = "derived"


def _read(name: str) -> str | None:
    """``os.environ.get(name)``, without its cost for an absent name (see ``_lookup``)."""
    found = _lookup(os.environ, ((name, _encoded(os.environ, name)),))
    return None if found is None else found[1]


def _encoded(environ: object, name: str) -> object:
    """``name`` as a key of CPython's ``os.environ._data`` (None for any other mapping)."""
    encodekey = getattr(environ, "encodekey", None)
    data = getattr(environ, "_data", None)
    return encodekey(name) if encodekey is not None and isinstance(data, dict) else None


def _lookup(environ: object, keys: tuple[tuple[str, object], ...]) -> tuple[str, str] | None:
    """The first of ``keys`` (name, its ``_encoded`` key) that is set in ``environ``, and its
    value.

    The SDK reads several settings on every call (credentials, the store, the workspace, so a
    change takes effect at once), and most are unset: ``os.environ`` answers an absent name by
    raising and catching two KeyErrors, several microseconds each, which added up to ~10% of a
    ``log_metric``'s client CPU. CPython's ``os.environ`` keeps its entries in ``_data`` (every
    change made through ``os.environ`` lands there), keyed by ``encodekey(name)``: one dict
    lookup per name, with the key encoded once per setting rather than per read. Any other
    mapping put in its place is read the ordinary way.
    """
    data = getattr(environ, "_data", None)
    for name, key in keys:
        if key is None or not isinstance(data, dict):
            raw = environ.get(name)  # type: ignore[attr-defined]
            if raw is not None:
                return name, raw
            continue
        encoded = data.get(key)
        if encoded is not None:
            return name, environ.decodevalue(encoded)  # type: ignore[attr-defined]
    return None


class EnvironmentVariable(Generic[T]):
    """One setting: ``MLGRID_*``, falling back to MLflow's name, then ``default``.

    ``fallback`` defaults to the same name with the ``MLFLOW_`` prefix; None means mlgrid-only.
    """

    def __init__(
        self,
        name: str,
        parse: Callable[[str], T],
        default: T,
        doc: str,
        *,
        fallback: str | None = _DERIVED,
    ) -> None:
        self.name = name
        if fallback == _DERIVED:
            fallback = "MLFLOW_" + name.removeprefix("MLGRID_")
        self.fallback = fallback
        self._parse = parse
        self.default = default
        self.__doc__ = doc
        #: (the os.environ these were made for, each name with its encoded key).
        self._keys: tuple[object, tuple[tuple[str, object], ...]] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The names read, in order of precedence."""
        return (self.name, self.fallback) if self.fallback else (self.name,)

    def source(self) -> str | None:
        """The name of the variable that is set (``MLGRID_*`` first), or None."""
        found = self._set_value()
        return None if found is None else found[0]

    def _set_value(self) -> tuple[str, str] | None:
        """(name, raw value) of the variable that is set (``MLGRID_*`` first), or None."""
        environ = os.environ
        keys = self._keys
        if keys is None or keys[0] is not environ:  # first read, or os.environ was replaced
            keys = self._keys = (environ, tuple((n, _encoded(environ, n)) for n in self.names))
        return _lookup(environ, keys[1])

    @property
    def is_set(self) -> bool:
        return self.source() is not None

    def get_raw(self) -> str | None:
        found = self._set_value()
        return None if found is None else found[1]

    def get(self) -> T:
        """The parsed value, or the default when neither name is set."""
        found = self._set_value()
        if found is None:
            return self.default
        name, raw = found
        try:
            return self._parse(raw)
        except ValueError as exc:
            expected = _TYPE_NAMES.get(self._parse, "a valid value")
            from mlgrid.exceptions import InvalidParameterValue  # gRPC: only on this error

            raise InvalidParameterValue(
                f"environment variable {name}={raw!r} is not {expected}: {exc}"
            ) from None

    def set(self, value: object) -> None:
        """Sets the ``MLGRID_*`` name (children inherit it); MLflow's name is left alone."""
        os.environ[self.name] = str(value).lower() if isinstance(value, bool) else str(value)

    def unset(self) -> None:
        for name in self.names:
            os.environ.pop(name, None)

    def __repr__(self) -> str:
        return f"EnvironmentVariable({self.name!r})"


def _str(name: str, doc: str) -> EnvironmentVariable[str | None]:
    return EnvironmentVariable[str | None](name, _parse_str, None, doc)


def _own_str(name: str, doc: str) -> EnvironmentVariable[str | None]:
    """A string setting of mlgrid's own, without an MLflow name to fall back to."""
    return EnvironmentVariable[str | None](name, _parse_str, None, doc, fallback=None)


MLGRID_TRACKING_URI = _str(
    "MLGRID_TRACKING_URI", "Tracking URI: grpc://host:port, sqlite:///…, postgresql://…"
)
MLGRID_REGISTRY_URI = _str("MLGRID_REGISTRY_URI", "Registry URI; the tracking URI when unset.")
MLGRID_EXPERIMENT_NAME = _str("MLGRID_EXPERIMENT_NAME", "Experiment that runs start in, by name.")
MLGRID_EXPERIMENT_ID = _str("MLGRID_EXPERIMENT_ID", "Experiment that runs start in, by id.")
MLGRID_RUN_ID = _str("MLGRID_RUN_ID", "A run that start_run() resumes (set for project runs).")
MLGRID_TRACKING_TOKEN = _str("MLGRID_TRACKING_TOKEN", "Bearer token sent to the gateway.")
MLGRID_TRACKING_USERNAME = _str("MLGRID_TRACKING_USERNAME", "Basic-auth user name.")
MLGRID_TRACKING_PASSWORD = _str("MLGRID_TRACKING_PASSWORD", "Basic-auth password.")
MLGRID_TRACKING_SERVER_CERT_PATH = _str(
    "MLGRID_TRACKING_SERVER_CERT_PATH", "CA bundle used to verify a grpcs:// gateway."
)
MLGRID_TRACKING_CLIENT_CERT_PATH = _str(
    "MLGRID_TRACKING_CLIENT_CERT_PATH", "Client certificate (PEM) for a grpcs:// gateway."
)
MLGRID_TRACKING_CLIENT_KEY_PATH = _str(
    "MLGRID_TRACKING_CLIENT_KEY_PATH",
    "Private key (PEM) of the client certificate; unset: read from the certificate's file.",
)
MLGRID_TRACKING_INSECURE_TLS = EnvironmentVariable(
    "MLGRID_TRACKING_INSECURE_TLS", _parse_bool, False, "Skip TLS verification (testing only)."
)
MLGRID_S3_ENDPOINT_URL = _str(
    "MLGRID_S3_ENDPOINT_URL", "Endpoint of an S3-compatible store (MinIO)."
)
MLGRID_ASYNC_LOGGING = EnvironmentVariable(
    "MLGRID_ASYNC_LOGGING",
    _parse_bool,
    False,
    "Log metrics, params and tags without blocking (a background queue, flushed at end_run).",
    fallback="MLFLOW_ENABLE_ASYNC_LOGGING",
)
MLGRID_ASYNC_LOGGING_BATCH_INTERVAL = EnvironmentVariable(
    "MLGRID_ASYNC_LOGGING_BATCH_INTERVAL",
    _parse_positive_float,
    0.2,
    "Seconds the background logger waits to gather a batch.",
    fallback=None,
)
MLGRID_ASYNC_LOGGING_QUEUE_SIZE = EnvironmentVariable(
    "MLGRID_ASYNC_LOGGING_QUEUE_SIZE",
    _parse_positive_int,
    100_000,
    "Items the background logger queues before log calls block.",
    fallback=None,
)
MLGRID_DISABLE_RUN_CONTEXT = EnvironmentVariable(
    "MLGRID_DISABLE_RUN_CONTEXT",
    _parse_bool,
    False,
    "When true, runs get no automatic context tags (user, source, git).",
    fallback=None,
)
MLGRID_GATEWAY_TUNNELS = EnvironmentVariable(
    "MLGRID_GATEWAY_TUNNELS",
    _parse_bool,
    True,
    "With a grpc:// tracking URI: send tracking and registry calls through a tunnel to their "
    "backend when the gateway offers one (false: every call through the gateway port).",
    fallback=None,
)
MLGRID_DIRECT_ROUTES = EnvironmentVariable(
    "MLGRID_DIRECT_ROUTES",
    _parse_bool,
    True,
    "With a grpc:// tracking URI on loopback: call the tracking, registry and artifacts backends "
    "at the loopback address the gateway announces, with no relay (false: through a tunnel).",
    fallback=None,
)
MLGRID_GRPC_INLINE_IO = EnvironmentVariable(
    "MLGRID_GRPC_INLINE_IO",
    _parse_bool,
    True,
    "gRPC's socket reads and writes run on the threads waiting for them rather than on its "
    "EventEngine's thread pool (GRPC_EXPERIMENTS=-event_engine_client,-event_engine_listener, "
    "set for mlgrid's process only while it imports grpc; never over a GRPC_EXPERIMENTS of "
    "your own): one thread hop less per message (false: gRPC's default).",
    fallback=None,
)
MLGRID_GRPC_CALLER_THREAD_STREAMS = EnvironmentVariable(
    "MLGRID_GRPC_CALLER_THREAD_STREAMS",
    _parse_bool,
    True,
    "A call pipeline's stream runs on the calling thread alone, on a completion queue of its "
    "own (grpcio's internal layer, on the grpcio versions it was tested on), instead of the "
    "public API's three threads: less than half the client's CPU per pipelined call (false: the "
    "public API).",
    fallback=None,
)
MLGRID_CALL_PIPELINE = EnvironmentVariable(
    "MLGRID_CALL_PIPELINE",
    _parse_bool,
    True,
    "Over a tracking tunnel: send log_metric, log_param, set_tag and log_batch calls one after "
    "another on one long-lived stream (false: each as a gRPC call of its own).",
    fallback=None,
)
MLGRID_REGISTRY_READ_CACHE = EnvironmentVariable(
    "MLGRID_REGISTRY_READ_CACHE",
    _parse_bool,
    True,
    "Registry service on PostgreSQL: cache model-version reads, kept coherent by change "
    "notifications (false: every read asks the database; for strict consistency across "
    "several registry replicas).",
    fallback=None,
)
MLGRID_STORE_ASYNC_COMMIT = EnvironmentVariable(
    "MLGRID_STORE_ASYNC_COMMIT",
    _parse_bool,
    False,
    "Tracking and registry services: acknowledge a write before it reaches the disk "
    "(PostgreSQL synchronous_commit=off, SQLite synchronous=NORMAL). Faster small writes, but a "
    "crash of the database host can lose the last acknowledged ones (never part of one). "
    "Default false: every acknowledged write is durable.",
    fallback=None,
)
MLGRID_REST_PORT = EnvironmentVariable[int | None](
    "MLGRID_REST_PORT",
    _parse_port,
    None,
    "Port of the gateway's MLflow REST API (mlgrid up, mlgrid server gateway); default 5000, "
    "any free port when the gateway's own port is 0.",
    fallback=None,
)
MLGRID_SOURCE_TYPE = _str("MLGRID_SOURCE_TYPE", "Overrides mlflow.source.type (PROJECT, JOB, …).")
MLGRID_SOURCE_NAME = _str("MLGRID_SOURCE_NAME", "Overrides mlflow.source.name.")
MLGRID_STORE_URI = EnvironmentVariable[str | None](
    "MLGRID_STORE_URI",
    _parse_str,
    None,
    "With a grpc:// tracking URI: the store the gateway should route to (else its default).",
    fallback=None,
)
MLGRID_DOCKER_VOLUME_ROOTS = EnvironmentVariable[str | None](
    "MLGRID_DOCKER_VOLUME_ROOTS",
    _parse_str,
    None,
    "Projects service, docker backend: host directories (separated by ':') under which a "
    "project's docker_env volumes may mount host paths. Unset: the service user's home "
    "directory and the system's temporary directory.",
    fallback=None,
)
MLGRID_GIT_TIMEOUT = EnvironmentVariable(
    "MLGRID_GIT_TIMEOUT",
    _parse_positive_float,
    2.0,
    "Seconds allowed for git context lookups.",
    fallback=None,
)
MLGRID_ARTIFACTS_ALLOWED_ROOTS = EnvironmentVariable[str | None](
    "MLGRID_ARTIFACTS_ALLOWED_ROOTS",
    _parse_str,
    None,
    "Artifact locations clients may name besides the default artifact root, comma-separated: "
    "root URIs of any scheme (file:///data, /data, s3://bucket/prefix, a plugin's), "
    "'<scheme>:*' for every location of a scheme, '*' for any (docs/limits.md).",
    fallback=None,
)
MLGRID_ARTIFACTS_SWEEP_INTERVAL = EnvironmentVariable(
    "MLGRID_ARTIFACTS_SWEEP_INTERVAL",
    _parse_positive_float,
    3600.0,
    "Artifacts service: seconds between sweeps for temp files that killed uploads left behind "
    "(one sweep also runs at start).",
    fallback=None,
)
MLGRID_PROJECTS_ALLOW_LOCAL_PATHS = EnvironmentVariable(
    "MLGRID_PROJECTS_ALLOW_LOCAL_PATHS",
    _parse_bool,
    False,
    "Projects service: accept project URIs that name server-local paths (mlgrid up and embedded "
    "mode turn it on; off in deployments).",
    fallback=None,
)
MLGRID_PROJECTS_ALLOWED_HOSTS = EnvironmentVariable[str | None](
    "MLGRID_PROJECTS_ALLOWED_HOSTS",
    _parse_str,
    "github.com,gitlab.com,bitbucket.org",
    "Projects service: hosts git and zip project URIs may name, comma-separated "
    "('*.example.com' for subdomains, '*' for any).",
    fallback=None,
)
MLGRID_PROJECTS_ALLOW_PRIVATE_ADDRESSES = EnvironmentVariable(
    "MLGRID_PROJECTS_ALLOW_PRIVATE_ADDRESSES",
    _parse_bool,
    False,
    "Projects service: fetch from hosts that resolve to loopback, link-local or private addresses.",
    fallback=None,
)
MLGRID_PROJECTS_MAX_SOURCE_BYTES = EnvironmentVariable(
    "MLGRID_PROJECTS_MAX_SOURCE_BYTES",
    _parse_positive_int,
    1024**3,
    "Projects service: the largest project (bytes of its working copy) a run may fetch.",
    fallback=None,
)
MLGRID_PROJECTS_RUN_USER = EnvironmentVariable[str | None](
    "MLGRID_PROJECTS_RUN_USER",
    _parse_str,
    "nobody",
    "Projects service running as root: the user (name or uid) local runs execute as; '' runs "
    "them as the service's own user (embedded mode's default).",
    fallback=None,
)
MLGRID_PROJECTS_RUN_MAX_CPU_SECONDS = EnvironmentVariable(
    "MLGRID_PROJECTS_RUN_MAX_CPU_SECONDS",
    _parse_non_negative_float,
    86400.0,
    "Projects service: CPU seconds a local run's process may use (RLIMIT_CPU); 0: no limit.",
    fallback=None,
)
MLGRID_PROJECTS_RUN_MAX_SECONDS = EnvironmentVariable(
    "MLGRID_PROJECTS_RUN_MAX_SECONDS",
    _parse_non_negative_float,
    86400.0,
    "Projects service: wall-clock seconds a local run's command may take; 0: no limit.",
    fallback=None,
)
MLGRID_PROJECTS_RUN_MAX_MEMORY_BYTES = EnvironmentVariable(
    "MLGRID_PROJECTS_RUN_MAX_MEMORY_BYTES",
    _parse_non_negative_float,
    16.0 * 1024**3,
    "Projects service: address space of each process of a local run (RLIMIT_AS); 0: no limit.",
    fallback=None,
)
MLGRID_PROJECTS_RUN_MAX_DISK_BYTES = EnvironmentVariable(
    "MLGRID_PROJECTS_RUN_MAX_DISK_BYTES",
    _parse_non_negative_float,
    10.0 * 1024**3,
    "Projects service: bytes a local run may write to one file (RLIMIT_FSIZE) and hold in its "
    "working copy; 0: no limit.",
    fallback=None,
)
MLGRID_ENABLE_SYSTEM_METRICS_LOGGING = EnvironmentVariable(
    "MLGRID_ENABLE_SYSTEM_METRICS_LOGGING",
    _parse_bool,
    False,
    "start_run() logs system metrics (CPU, memory, disk, network, GPU) unless told otherwise.",
)
MLGRID_SYSTEM_METRICS_SAMPLING_INTERVAL = EnvironmentVariable(
    "MLGRID_SYSTEM_METRICS_SAMPLING_INTERVAL",
    _parse_positive_float,
    10.0,
    "Seconds between two samples of system metrics.",
)
MLGRID_ARTIFACTS_MAX_TRANSFERS = EnvironmentVariable(
    "MLGRID_ARTIFACTS_MAX_TRANSFERS",
    _parse_positive_int,
    8,
    "Artifacts service: uploads and downloads one process runs at once; more wait (HTTP/2 flow "
    "control holds their senders back), so memory stays bounded (docs/limits.md).",
    fallback=None,
)
MLGRID_ARTIFACTS_TRANSFER_WAIT = EnvironmentVariable(
    "MLGRID_ARTIFACTS_TRANSFER_WAIT",
    _parse_positive_float,
    120.0,
    "Artifacts service: seconds a transfer waits for a free slot before RESOURCE_EXHAUSTED.",
    fallback=None,
)

MLGRID_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE = EnvironmentVariable(
    "MLGRID_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE",
    _parse_positive_int,
    100 * 1024 * 1024,
    "Bytes from which a file goes straight to an object store with presigned multipart URLs "
    "(when the artifact backend offers them).",
)
MLGRID_MULTIPART_UPLOAD_CHUNK_SIZE = EnvironmentVariable(
    "MLGRID_MULTIPART_UPLOAD_CHUNK_SIZE",
    _parse_positive_int,
    16 * 1024 * 1024,
    "Part size in bytes of direct multipart uploads (raised to S3's minimum of 5 MiB).",
)
MLGRID_ARTIFACT_TRANSFER_WORKERS = EnvironmentVariable(
    "MLGRID_ARTIFACT_TRANSFER_WORKERS",
    _parse_positive_int,
    8,
    "Files (or multipart parts) the SDK transfers in parallel.",
)
MLGRID_PROJECT_FETCH_TIMEOUT = EnvironmentVariable(
    "MLGRID_PROJECT_FETCH_TIMEOUT",
    _parse_positive_float,
    300.0,
    "Seconds allowed for each git command or download while fetching a project.",
    fallback=None,
)

# ---------------------------------------------------------------- servers and the CLI

MLGRID_BACKEND_STORE_URI = EnvironmentVariable[str](
    "MLGRID_BACKEND_STORE_URI",
    _parse_str,
    "sqlite:///mlgrid.db",
    "Services: the default tracking store (sqlite:///path or postgresql://user@host/db).",
    fallback=None,
)
MLGRID_REGISTRY_STORE_URI = _own_str(
    "MLGRID_REGISTRY_STORE_URI",
    "Services: the default registry store (the tracking store's when unset).",
)
MLGRID_DEFAULT_ARTIFACT_ROOT = _own_str(
    "MLGRID_DEFAULT_ARTIFACT_ROOT",
    "Services: artifact root of experiments that name none (./mlgrid-artifacts when unset).",
)
MLGRID_GATEWAY_TARGET = _own_str(
    "MLGRID_GATEWAY_TARGET",
    "Services: host:port of the gateway, through which a service reaches the others.",
)
MLGRID_PUBLIC_TRACKING_URI = _own_str(
    "MLGRID_PUBLIC_TRACKING_URI",
    "Services: the tracking URI that project runs are given (grpc://<gateway> when unset).",
)
MLGRID_GATEWAY_CONFIG = _own_str("MLGRID_GATEWAY_CONFIG", "Gateway: the routes file (YAML).")
MLGRID_GATEWAY_BACKENDS = _own_str(
    "MLGRID_GATEWAY_BACKENDS", "Gateway: backend addresses to ask what they serve, comma-separated."
)
MLGRID_GATEWAY_TUNNEL_PORT = EnvironmentVariable[int | None](
    "MLGRID_GATEWAY_TUNNEL_PORT",
    int,
    None,
    "Gateway: port of the tunnel listener announced to clients.",
    fallback=None,
)
MLGRID_GATEWAY_WORKERS = EnvironmentVariable(
    "MLGRID_GATEWAY_WORKERS",
    _parse_positive_int,
    256,
    "Gateway: calls forwarded at once (a streaming call holds one for its whole length).",
    fallback=None,
)
# ---------------------------------------------------------------- gateway: TLS and identity

MLGRID_GATEWAY_TLS_CERT = _own_str(
    "MLGRID_GATEWAY_TLS_CERT",
    "Gateway: certificate chain (PEM) served on its gRPC, tunnel and REST ports; with "
    "MLGRID_GATEWAY_TLS_KEY it turns TLS on.",
)
MLGRID_GATEWAY_TLS_KEY = _own_str(
    "MLGRID_GATEWAY_TLS_KEY", "Gateway: private key (PEM) of MLGRID_GATEWAY_TLS_CERT."
)
MLGRID_GATEWAY_TLS_CLIENT_CA = _own_str(
    "MLGRID_GATEWAY_TLS_CLIENT_CA",
    "Gateway: CA bundle (PEM) of client certificates; set, every client must present a "
    "certificate it signed (mutual TLS).",
)
MLGRID_AUTH_OIDC_ISSUER = _own_str(
    "MLGRID_AUTH_OIDC_ISSUER",
    "Gateway: the identity provider whose JWTs are accepted as bearer tokens (their 'iss').",
)
MLGRID_AUTH_OIDC_AUDIENCE = _own_str(
    "MLGRID_AUTH_OIDC_AUDIENCE", "Gateway: the 'aud' the identity provider's tokens must carry."
)
MLGRID_AUTH_OIDC_JWKS_URL = _own_str(
    "MLGRID_AUTH_OIDC_JWKS_URL", "Gateway: https:// URL of the identity provider's signing keys."
)
MLGRID_AUTH_OIDC_JWKS_FILE = _own_str(
    "MLGRID_AUTH_OIDC_JWKS_FILE", "Gateway: a file holding the identity provider's JWKS."
)
MLGRID_AUTH_OIDC_USERNAME_CLAIM = EnvironmentVariable[str](
    "MLGRID_AUTH_OIDC_USERNAME_CLAIM",
    _parse_str,
    "sub",
    "Gateway: the JWT claim that is the mlgrid user name (sub, email, preferred_username, …).",
    fallback=None,
)
MLGRID_AUTH_OIDC_GROUPS_CLAIM = EnvironmentVariable[str](
    "MLGRID_AUTH_OIDC_GROUPS_CLAIM",
    _parse_str,
    "groups",
    "Gateway: the JWT claim listing the user's groups.",
    fallback=None,
)
MLGRID_AUTH_OIDC_LEEWAY = EnvironmentVariable(
    "MLGRID_AUTH_OIDC_LEEWAY",
    _parse_non_negative_float,
    60.0,
    "Gateway: seconds of clock difference allowed when checking a JWT's exp, nbf and iat.",
    fallback=None,
)
MLGRID_LOG_LEVEL = EnvironmentVariable[str](
    "MLGRID_LOG_LEVEL", _parse_str, "INFO", "Services: logging level.", fallback=None
)
MLGRID_ARTIFACTS_DIRECT_IO = EnvironmentVariable(
    "MLGRID_ARTIFACTS_DIRECT_IO",
    _parse_bool,
    False,
    "Artifacts service: write large local files with O_DIRECT (bypassing the page cache).",
    fallback=None,
)
MLGRID_PROJECTS_WORK_DIR = _own_str(
    "MLGRID_PROJECTS_WORK_DIR", "Projects service: where runs' working directories are made."
)
MLGRID_PROJECTS_STATE_DIR = _own_str(
    "MLGRID_PROJECTS_STATE_DIR", "Projects service: where it keeps the state of submitted runs."
)
MLGRID_PROJECTS_STORE_URI = _own_str(
    "MLGRID_PROJECTS_STORE_URI",
    "Projects service: database of its run leases, shared by its replicas (default: the tracking "
    "store when it is PostgreSQL or MySQL, else a SQLite file in the state directory).",
)
MLGRID_PROJECTS_LEASE_SECONDS = EnvironmentVariable(
    "MLGRID_PROJECTS_LEASE_SECONDS",
    _parse_positive_float,
    30.0,
    "Projects service: seconds a replica's lease on a run lasts unrenewed; another replica takes "
    "the run over after that.",
    fallback=None,
)
MLGRID_PROJECTS_KILL_GRACE = EnvironmentVariable(
    "MLGRID_PROJECTS_KILL_GRACE",
    _parse_non_negative_float,
    10.0,
    "Projects service: seconds a cancelled run has between SIGTERM and SIGKILL.",
    fallback=None,
)
MLGRID_PROJECTS_KEEP_WORKDIRS = EnvironmentVariable(
    "MLGRID_PROJECTS_KEEP_WORKDIRS",
    _parse_bool,
    False,
    "Projects service: keep runs' working directories after they end (for debugging).",
    fallback=None,
)
MLGRID_ENV_ROOT = _own_str(
    "MLGRID_ENV_ROOT", "Projects: where built Python environments are cached (~/.mlgrid/envs)."
)
MLGRID_ENV_INSTALL_TIMEOUT = EnvironmentVariable(
    "MLGRID_ENV_INSTALL_TIMEOUT",
    _parse_positive_float,
    1800.0,
    "Projects: seconds allowed to build one environment.",
    fallback=None,
)
MLGRID_CONDA_HOME = _str("MLGRID_CONDA_HOME", "Projects: the conda installation (bin/conda).")
MLGRID_KUBE_BACKEND_CONFIG = _own_str(
    "MLGRID_KUBE_BACKEND_CONFIG",
    "Projects service: a JSON file of defaults for the kubernetes backend's config.",
)
MLGRID_KUBE_TRACKING_URI = EnvironmentVariable[str | None](
    "MLGRID_KUBE_TRACKING_URI",
    _parse_str,
    None,
    "Projects service: the tracking URI Kubernetes Jobs' pods are given (one they can reach).",
    fallback="KUBE_MLFLOW_TRACKING_URI",
)

# ---------------------------------------------------------------- authentication (services)

MLGRID_AUTH = EnvironmentVariable(
    "MLGRID_AUTH",
    _parse_bool,
    False,
    "Services and gateway: require authentication and check permissions (docs/auth.md).",
    fallback=None,
)
MLGRID_AUTH_SECRET = _own_str(
    "MLGRID_AUTH_SECRET",
    "Services and gateway: the shared secret that signs identity assertions (auth on).",
)
MLGRID_AUTH_STORE_URI = _own_str(
    "MLGRID_AUTH_STORE_URI",
    "Services and gateway: the database of users, tokens and grants (the tracking store's).",
)
MLGRID_AUTH_ADMIN_USERNAME = _own_str(
    "MLGRID_AUTH_ADMIN_USERNAME", "Services: the admin user created at start when missing."
)
MLGRID_AUTH_ADMIN_PASSWORD = _own_str(
    "MLGRID_AUTH_ADMIN_PASSWORD", "Services: the password of that admin user."
)
MLGRID_AUTH_DEFAULT_PERMISSION = _own_str(
    "MLGRID_AUTH_DEFAULT_PERMISSION",
    "Services: the default permission set at first start (READ, USE, EDIT, MANAGE, NO_PERMISSIONS).",
)
MLGRID_AUTH_CACHE_SECONDS = EnvironmentVariable(
    "MLGRID_AUTH_CACHE_SECONDS",
    _parse_non_negative_float,
    2.0,
    "Services and gateway: how long a verified credential or a user's grants are reused.",
    fallback=None,
)
MLGRID_AUTH_RUN_TOKEN_SECONDS = EnvironmentVariable(
    "MLGRID_AUTH_RUN_TOKEN_SECONDS",
    _parse_positive_int,
    7 * 24 * 3600,
    "Projects service: most seconds a project run's access token lives (revoked when it ends).",
    fallback=None,
)
MLGRID_ALLOW_OPEN = EnvironmentVariable(
    "MLGRID_ALLOW_OPEN",
    _parse_bool,
    False,
    "Servers: allow serving without auth on an address other than loopback.",
    fallback=None,
)
MLGRID_WORKSPACE = _own_str(
    "MLGRID_WORKSPACE", "SDK: the workspace new experiments, models and project runs go to."
)

#: Every declared variable, for documentation and diagnostics.
ALL: tuple[EnvironmentVariable[object], ...] = tuple(
    value for value in list(globals().values()) if isinstance(value, EnvironmentVariable)
)
