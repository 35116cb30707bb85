"""The Job's image: the project image (as ``--build-image`` makes it), pushed to ``repository-uri``.

Built and pushed through the container engine (``DOCKER_HOST``) by the builder every container
backend shares (``containers.images``); the Job names it by digest, so the pods run exactly the
image built for this run. Registry credentials come from the Docker config, as for ``docker
push``.
"""

from __future__ import annotations

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.projects.backend import RunRequest
from mlgrid.projects.env_files import DockerEnv

from ..containers.engine import connect
from ..containers.images import (
    ImagePushError,
    build_project_image,
    image_repository,
    push_image,
)
from ..logbuffer import LogBuffer

__all__ = ["publish_project_image"]


def publish_project_image(request: RunRequest, repository: str, output: LogBuffer) -> str:
    """Builds (or reuses) the run's project image, pushes it; ``repository@sha256:…``."""
    docker_env = request.project.env
    assert isinstance(docker_env, DockerEnv)
    engine = connect()
    try:
        output.system(f"[mlgrid] building the project image FROM {docker_env.image}\n")
        image = build_project_image(
            engine,
            docker_env.image,
            request.project_dir,
            image_repository(request.project.name),
            log=output.system,
        )
        try:
            return push_image(engine, image, repository=repository, log=output.system)
        except ImagePushError as exc:
            raise InvalidParameterValue(
                f"backend config: 'repository-uri' {repository[:200]!r}: {exc.message}"
            ) from None
    finally:
        engine.close()
