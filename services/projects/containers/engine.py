"""The container engine: any Docker Engine API, as the ``docker`` SDK finds it.

``DOCKER_HOST`` (and ``DOCKER_TLS_VERIFY`` / ``DOCKER_CERT_PATH``) choose the engine, as for the
``docker`` CLI; unset means the local default socket. Docker, or Podman's API service, both do.
An engine that cannot be reached is reported once, with the address tried and the variable that
sets it, instead of as a connection traceback.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from mlgrid.exceptions import InvalidParameterValue

if TYPE_CHECKING:
    import docker

__all__ = ["EngineUnavailable", "connect", "engine_address"]

#: Seconds one engine API call may take (image builds and pushes stream, so they are not bound
#: by it as a whole).
API_TIMEOUT = 120


class EngineUnavailable(InvalidParameterValue):
    """No container engine answers at the configured address."""


def engine_address() -> str:
    """Where the engine is looked for (for messages): ``DOCKER_HOST`` or the default socket."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock (the default)"


def connect() -> docker.DockerClient:
    """A client of the engine that answers a ping, or EngineUnavailable naming DOCKER_HOST."""
    try:
        import docker
    except ImportError as exc:  # the SDK-only install
        raise InvalidParameterValue(
            "container backends need the docker SDK: pip install 'mlgrid[server]'"
        ) from exc
    try:
        client = docker.from_env(timeout=API_TIMEOUT)
        client.ping()
    except docker.errors.DockerException as exc:
        raise EngineUnavailable(
            f"no container engine answers at DOCKER_HOST={engine_address()}: set DOCKER_HOST "
            f"to a Docker Engine API (a Docker or Podman socket, or tcp://host:port) "
            f"({type(exc).__name__})"
        ) from None
    return client
