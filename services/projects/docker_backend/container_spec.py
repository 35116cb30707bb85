"""What a project's container is made of: image, command, environment, volumes, network.

From the project's ``docker_env`` (as MLflow reads it) plus what the run needs to log:

* ``volumes``: ``/host/path:/container/path[:ro|rw]``. A host path must be absolute and lie
  under one of the allowed roots (``MLGRID_DOCKER_VOLUME_ROOTS``; by default the service user's
  home and the system's temporary directory): a project must not mount the host's ``/etc`` or
  the engine's socket just by asking.
* ``environment``: ``[name, value]`` pairs, and names copied from the service's environment
  (never its own configuration: database URLs and the like stay out).
* the run's variables (``MLFLOW_RUN_ID``, ``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_ID`` and
  their ``MLGRID_`` twins). With a gateway tracking URI the container reaches it on the host's
  network; with a local store (SQLite, a file artifact root) the store's directory and the run's
  artifact directory are mounted at the same paths, so what the run logs is there afterwards.
* host networking, so ``127.0.0.1`` in the container is the host (a gateway, PostgreSQL).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mlgrid.environment import MLGRID_DOCKER_VOLUME_ROOTS
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.projects.backend import RunRequest
from mlgrid.projects.env_files import DockerEnv
from mlgrid.uris import is_gateway_uri, uri_scheme

from ..run_variables import is_service_secret, run_variables

__all__ = [
    "ContainerSpec",
    "allowed_volume_roots",
    "container_spec",
    "docker_env_of",
    "docker_env_variables",
]

_MODES = ("ro", "rw")
#: Names never copied from the service's environment besides its own settings and secrets.
_NEVER_COPIED = ("DOCKER_HOST", "DOCKER_CONFIG")


@dataclass
class ContainerSpec:
    """Arguments of the container (see ``docker.models.containers.ContainerCollection.create``)."""

    image: str
    command: list[str]
    environment: dict[str, str]
    #: host path -> {"bind": container path, "mode": "ro" | "rw"}
    volumes: dict[str, dict[str, str]] = field(default_factory=dict)
    working_dir: str | None = None
    #: Notes for the run's log (e.g. a host variable that was not set).
    notes: list[str] = field(default_factory=list)


def docker_env_of(request: RunRequest) -> DockerEnv:
    """The project's docker_env, with ``backend_config["image"]`` (when given) as its image.

    The image in the backend configuration lets a project that declares no environment (or
    another image) run in a container without editing its MLproject.
    """
    env = request.project.env
    override = request.backend_config.get("image")
    if override is not None and (not isinstance(override, str) or not override.strip()):
        raise InvalidParameterValue(
            f"backend_config 'image' must be a non-empty image name, got {override!r}"
        )
    if isinstance(env, DockerEnv):
        return dataclasses.replace(env, image=override) if override else env
    if override:
        return DockerEnv(image=override)
    declared = request.project.env_type or "no environment"
    raise InvalidParameterValue(
        f"backend 'docker' runs projects that declare docker_env in their MLproject; project "
        f"{request.project.name!r} declares {declared}. Add a docker_env (image: ...), give "
        'the image in the backend configuration ({"image": ...}), or run it with backend '
        "'local'"
    )


def allowed_volume_roots() -> list[Path]:
    """Host directories under which volumes may be mounted."""
    raw = MLGRID_DOCKER_VOLUME_ROOTS.get()
    if raw:
        return [Path(part).resolve() for part in raw.split(os.pathsep) if part]
    return [Path.home().resolve(), Path(tempfile.gettempdir()).resolve()]


def _within(path: Path, roots: list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def _volume(raw: str, roots: list[Path]) -> tuple[str, str, str]:
    parts = raw.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InvalidParameterValue(
            f"docker_env.volumes entry {raw[:300]!r} must be 'host_path:container_path' or "
            "'host_path:container_path:ro|rw'"
        )
    host, container = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in _MODES:
        raise InvalidParameterValue(
            f"docker_env.volumes entry {raw[:300]!r}: mode {mode!r} is not one of ro, rw"
        )
    if not host.startswith("/"):
        raise InvalidParameterValue(
            f"docker_env.volumes entry {raw[:300]!r}: the host path must be absolute "
            "(named volumes are not supported)"
        )
    if not container.startswith("/"):
        raise InvalidParameterValue(
            f"docker_env.volumes entry {raw[:300]!r}: the container path must be absolute"
        )
    resolved = Path(host).resolve()
    if not _within(resolved, roots):
        raise InvalidParameterValue(
            f"docker_env.volumes entry {raw[:300]!r}: host path {host!r} is outside the "
            f"directories volumes may come from ({', '.join(str(r) for r in roots)}; set "
            "MLGRID_DOCKER_VOLUME_ROOTS on the projects service to change them)"
        )
    return str(resolved), container, mode


def docker_env_variables(env: DockerEnv, notes: list[str]) -> dict[str, str]:
    """docker_env ``environment``: pairs as given, names copied from the service's environment
    (never its own settings); a name the service does not have is noted in ``notes``."""
    values: dict[str, str] = {}
    for item in env.environment:
        if isinstance(item, tuple):
            values[item[0]] = item[1]
            continue
        if item in _NEVER_COPIED or is_service_secret(item):
            raise InvalidParameterValue(
                f"docker_env.environment: {item!r} is the projects service's own setting and "
                "is not copied into runs (with auth on, a run is given its own credential)"
            )
        if item in os.environ:
            values[item] = os.environ[item]
        else:
            notes.append(f"docker_env.environment: {item} is not set on the host; not passed\n")
    return values


def _local_path(uri: str) -> Path | None:
    """The local directory a file URI or bare path names (None for anything remote)."""
    if not uri:
        return None
    scheme = uri_scheme(uri)
    if scheme != "file":
        return None
    parts = urlsplit(uri)
    path = unquote(parts.path) if parts.scheme else uri
    return Path(path) if path.startswith("/") else None


def _store_mounts(request: RunRequest, artifact_root: str) -> list[Path]:
    """Directories the run's code writes when it opens a local store itself."""
    if is_gateway_uri(request.tracking_uri):
        return []
    found: list[Path] = []
    scheme = uri_scheme(request.tracking_uri)
    if scheme == "sqlite":
        database = urlsplit(request.tracking_uri).path
        # sqlite:////abs/path -> "//abs/path"; sqlite:///rel -> "/rel" (relative to the service)
        if database.startswith("//"):
            found.append(Path(database[1:]).parent)
    for uri in (request.artifact_uri, artifact_root):
        local = _local_path(uri)
        if local is not None:
            found.append(local)
    return found


def container_spec(
    request: RunRequest,
    image: str,
    command: str,
    *,
    working_dir: str | None,
    artifact_root: str,
) -> ContainerSpec:
    """The container of ``request``'s run; InvalidParameterValue names a bad docker_env field."""
    env = docker_env_of(request)
    notes: list[str] = []
    roots = allowed_volume_roots()
    volumes: dict[str, dict[str, str]] = {}
    for raw in env.volumes:
        host, container, mode = _volume(raw, roots)
        volumes[host] = {"bind": container, "mode": mode}
    environment = docker_env_variables(env, notes)
    environment.update(run_variables(request))
    for directory in _store_mounts(request, artifact_root):
        directory.mkdir(parents=True, exist_ok=True)
        volumes.setdefault(str(directory), {"bind": str(directory), "mode": "rw"})
    if not is_gateway_uri(request.tracking_uri) and artifact_root:
        environment.setdefault("MLGRID_DEFAULT_ARTIFACT_ROOT", artifact_root)
    return ContainerSpec(
        image=image,
        command=["sh", "-c", command],
        environment=environment,
        volumes=volumes,
        working_dir=working_dir,
        notes=notes,
    )
