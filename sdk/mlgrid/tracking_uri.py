"""Where the SDK sends tracking and registry calls.

Precedence, as in MLflow: :func:`set_tracking_uri` in this process, then ``MLGRID_TRACKING_URI``
(or ``MLFLOW_TRACKING_URI``), then a SQLite database ``mlgrid.db`` in the working directory,
served in-process (embedded mode). The registry URI defaults to the tracking URI.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from mlgrid import environment as env
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.plugins.registry import ENTRY_POINT_GROUPS, installed_entry_points
from mlgrid.transport import Transport, get_transport
from mlgrid.uris import sdk_gateway_uri, uri_scheme

__all__ = [
    "DEFAULT_TRACKING_URI",
    "get_registry_uri",
    "get_tracking_transport",
    "get_tracking_uri",
    "is_tracking_uri_set",
    "resolve_uri",
    "set_registry_uri",
    "set_tracking_uri",
]

#: The embedded default (made absolute against the working directory when read).
DEFAULT_TRACKING_URI = "sqlite:///mlgrid.db"

_tracking_uri: str | None = None
_registry_uri: str | None = None


def resolve_uri(uri: str) -> str:
    """Normalises a user-given URI: relative SQLite paths become absolute, so every process
    and every later ``chdir`` agree on the same database; bare paths are refused clearly."""
    uri = uri.strip()
    if not uri:
        raise InvalidParameterValue("tracking URI must not be empty")
    # MLflow's name for a gateway (mlgrid://, mlgrids://) is the SDK's grpc://, grpcs://.
    uri = sdk_gateway_uri(uri)
    parts = urlsplit(uri)
    if parts.scheme == "sqlite":
        # sqlite:///relative.db -> path "relative.db"; sqlite:////abs.db -> "/abs.db".
        prefix = "sqlite:///"
        if not uri.startswith(prefix):
            raise InvalidParameterValue(
                f"tracking URI {uri!r} is not a SQLite URL; expected sqlite:///<path>"
            )
        path = uri[len(prefix) :]
        if path in ("", ":memory:"):
            return uri
        return prefix + str(Path(path).expanduser().absolute())
    if parts.scheme in ("grpc", "grpcs"):
        if not parts.hostname or parts.port is None:
            raise InvalidParameterValue(
                f"tracking URI {uri!r} needs a host and a port, e.g. grpc://127.0.0.1:50051"
            )
        return uri
    if parts.scheme in ("http", "https"):
        raise InvalidParameterValue(
            f"tracking URI {uri!r} is HTTP; mlgrid talks gRPC: use grpc://host:port "
            "(the address `mlgrid up` prints), or grpcs:// for TLS"
        )
    if not parts.scheme or len(parts.scheme) == 1:  # a bare path or a Windows drive letter
        raise InvalidParameterValue(f"tracking URI {uri!r} has no scheme; {_ACCEPTED}")
    scheme = uri_scheme(uri)
    if scheme not in _STORE_SCHEMES and scheme not in _plugin_store_schemes():
        raise InvalidParameterValue(
            f"tracking URI {uri[:200]!r} has scheme {scheme[:40]!r}, which nothing here serves; "
            f"{_ACCEPTED}, or install the plugin that serves {scheme[:40]!r} (entry point "
            f"group {_STORE_PLUGIN_GROUP})"
        )
    return uri


#: What a tracking URI may be, said once for every message that refuses one.
_ACCEPTED = (
    "use grpc://host:port for a server (the address `mlgrid up` prints; grpcs:// for TLS, "
    "mlgrid:// as MLflow's client names it), or sqlite:///<path>, postgresql://user@host/db "
    "or mysql://user@host/db for a store served in-process"
)
#: Stores mlgrid serves in-process itself (a ``+driver`` suffix is dropped by uri_scheme).
_STORE_SCHEMES = frozenset({"sqlite", "postgresql", "postgres", "mysql", "mariadb"})
_STORE_PLUGIN_GROUP = ENTRY_POINT_GROUPS["tracking_store"]


def _plugin_store_schemes() -> set[str]:
    """Schemes of installed tracking-store plugins (entry point names; nothing is imported)."""
    return {entry.name for entry in installed_entry_points(_STORE_PLUGIN_GROUP)}


def set_tracking_uri(uri: str | Path | None) -> None:
    """Sets the tracking URI for this process and its children (None restores the default)."""
    global _tracking_uri
    if uri is None:
        _tracking_uri = None
        env.MLGRID_TRACKING_URI.unset()
        return
    resolved = resolve_uri(str(uri))
    _tracking_uri = resolved
    # Child processes (projects, subprocesses of a script) inherit the choice, as in MLflow.
    env.MLGRID_TRACKING_URI.set(resolved)


def get_tracking_uri() -> str:
    """The tracking URI in effect."""
    if _tracking_uri is not None:
        return _tracking_uri
    from_env = env.MLGRID_TRACKING_URI.get()
    if from_env:
        return resolve_uri(from_env)
    return resolve_uri(DEFAULT_TRACKING_URI)


def is_tracking_uri_set() -> bool:
    """True when the URI was chosen explicitly (call or environment), not defaulted."""
    return _tracking_uri is not None or bool(env.MLGRID_TRACKING_URI.get())


def set_registry_uri(uri: str | Path | None) -> None:
    """Sets the model registry URI (None: follow the tracking URI)."""
    global _registry_uri
    if uri is None:
        _registry_uri = None
        env.MLGRID_REGISTRY_URI.unset()
        return
    resolved = resolve_uri(str(uri))
    _registry_uri = resolved
    env.MLGRID_REGISTRY_URI.set(resolved)


def get_registry_uri() -> str:
    """The registry URI in effect: set, else from the environment, else the tracking URI."""
    if _registry_uri is not None:
        return _registry_uri
    from_env = env.MLGRID_REGISTRY_URI.get()
    if from_env:
        return resolve_uri(from_env)
    return get_tracking_uri()


def get_tracking_transport(
    tracking_uri: str | None = None, registry_uri: str | None = None
) -> Transport:
    """The process-wide transport for the given (or current) tracking and registry URIs."""
    tracking = resolve_uri(tracking_uri) if tracking_uri else get_tracking_uri()
    registry = resolve_uri(registry_uri) if registry_uri else None
    if registry is None and (_registry_uri is not None or env.MLGRID_REGISTRY_URI.is_set):
        registry = get_registry_uri()
    # The registry URI only matters to the transport when it differs from the tracking URI.
    return get_transport(tracking, None if registry == tracking else registry)
