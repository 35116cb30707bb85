"""The ``docker`` backend: a project's ``docker_env`` image, run as a container.

As MLflow runs docker projects: the image as is, or with ``--build-image`` a new image FROM it
with the project at ``/mlflow/projects/code`` (and the mlgrid SDK, see
containers/images.py); ``volumes`` and ``environment`` from the MLproject; the tracking URI,
run id and experiment id passed in; host networking. Any Docker Engine API serves
(``DOCKER_HOST``), Docker's or Podman's.

Submitting checks what can be checked at once (a reachable engine, the docker_env's volumes and
environment): a failure is the caller's error, naming the field, and the run is marked FAILED.
Building, pulling and running happen in the background (see run.py).
"""

from __future__ import annotations

import logging

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.projects.backend import (
    BackendHost,
    OwnedHandle,
    ProjectBackend,
    RunRequest,
    SubmittedRun,
)

from ..containers.engine import connect
from .container_spec import container_spec, docker_env_of
from .run import Adopted, DockerSubmittedRun

log = logging.getLogger(__name__)

__all__ = ["DockerBackend"]


class DockerBackend(ProjectBackend):
    """Runs docker_env projects in containers."""

    def __init__(self, host: BackendHost) -> None:
        self.host = host

    @classmethod
    def for_host(cls, host: BackendHost) -> DockerBackend:
        return cls(host)

    def check(self, request: RunRequest) -> None:
        docker_env_of(request)
        if request.env_manager not in (None, "", "docker"):
            raise InvalidParameterValue(
                f"env_manager {request.env_manager!r} does not apply to docker_env projects: "
                "the image is the environment; leave env_manager unset"
            )

    def submit(self, request: RunRequest) -> SubmittedRun:
        self.check(request)
        # Bad volumes or environment, and an engine that does not answer, are the caller's to
        # fix: say so now (the runner marks the run FAILED), before anything starts.
        container_spec(request, "", "", working_dir=None, artifact_root=self.host.artifact_root)
        connect()
        self.host.record(OwnedHandle(request.run_id, request.backend))
        return DockerSubmittedRun(self.host, request=request)

    def recover(self, handle: OwnedHandle) -> SubmittedRun | None:
        """Follows the container of a run a dead service instance started, if it still
        exists (it may have finished meanwhile: its exit code still decides the status)."""
        container_id = handle.details.get("container")
        if not container_id:
            return None  # it died before the container existed
        import docker

        try:
            connect().containers.get(container_id)
        except (docker.errors.NotFound, InvalidParameterValue) as exc:
            log.warning("container of orphaned run %s is gone: %s", handle.run_id, exc)
            return None
        adopted = Adopted(
            run_id=handle.run_id,
            container_id=container_id,
            store_uri=handle.details.get("store_uri"),
            workdir=handle.details.get("workdir"),
        )
        return DockerSubmittedRun(self.host, adopted=adopted)
