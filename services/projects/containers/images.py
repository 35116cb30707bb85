"""Project images: FROM a project's docker_env image, with the project inside, tagged by content.

This is ``--build-image`` (and what the kubernetes backend runs)::

    image = build_project_image(client, base_image, project_dir, repository, log=print)
    reference = push_image(client, image, log=print)   # "repo@sha256:…", pinned by digest

The project goes to ``/mlflow/projects/code`` (MLflow's place, which is also the working
directory). With ``install_sdk`` (the default) the running mlgrid is installed into
``/opt/mlgrid``, a virtualenv over the image's own ``python3`` (its packages stay visible) that
comes first on ``PATH``, so the project's ``python`` can ``import mlgrid``. pip runs in a builder
stage with the host's index settings and CA bundle (containers/pip_settings.py); only the
virtualenv is copied into the final image.

The tag is a hash of everything the image is made of: the base image's id, the project's files
(names, modes, contents; ``.git`` excluded), the SDK wheel and this recipe. An image with that
tag already in the engine is reused without a build. Pushing uses the registry credentials of
the Docker config (``DOCKER_CONFIG``, else ``~/.docker/config.json``), as the ``docker`` CLI
would; an ``auth_config`` argument overrides them.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from mlgrid.exceptions import InvalidParameterValue

from ..sdk_wheel import sdk_wheel
from .pip_settings import host_pip_settings

if TYPE_CHECKING:
    import docker

__all__ = [
    "PROJECT_CODE_DIR",
    "SDK_PREFIX",
    "ImageBuildError",
    "ImagePushError",
    "ProjectImage",
    "build_project_image",
    "ensure_image",
    "image_repository",
    "push_image",
]

#: Where the project lives in a built image (MLflow's path; the working directory too).
PROJECT_CODE_DIR = "/mlflow/projects/code"
#: The virtualenv holding the mlgrid SDK in a built image.
SDK_PREFIX = "/opt/mlgrid"
#: Bumped when the Dockerfile below changes, so old tags are not reused for a new recipe.
RECIPE_VERSION = "1"
_EXCLUDED_DIRS = {".git"}
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_REPOSITORY_PART = re.compile(r"[^a-z0-9._-]+")

Log = Callable[[str], None]


class ImageBuildError(InvalidParameterValue):
    """The engine could not build the project image (the message has the build's error)."""


class ImagePushError(InvalidParameterValue):
    """The registry refused the image or could not be reached."""


@dataclass(frozen=True)
class ProjectImage:
    """A built project image."""

    #: ``repository:content-tag``.
    tag: str
    #: The engine's id of the image (``sha256:…``).
    image_id: str
    #: False when an image with this tag already existed and was reused.
    built: bool

    @property
    def repository(self) -> str:
        return self.tag.rsplit(":", 1)[0]


def image_repository(project_name: str) -> str:
    """The local repository of a project's images: ``mlgrid-project-<name>``."""
    cleaned = _REPOSITORY_PART.sub("-", project_name.lower()).strip("-._") or "project"
    return f"mlgrid-project-{cleaned[:100]}"


def ensure_image(client: docker.DockerClient, image: str, field: str, log: Log) -> Any:
    """The image ``image``, pulled if the engine does not have it; else an error naming
    ``field`` (e.g. "docker_env.image")."""
    import docker

    try:
        return client.images.get(image)
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError as exc:
        raise InvalidParameterValue(
            f"{field} {image!r} is not a valid image name: {_why(exc)}"
        ) from None
    log(f"pulling {image}\n")
    try:
        return client.images.pull(image)
    except docker.errors.DockerException as exc:
        raise InvalidParameterValue(
            f"{field} {image!r} does not exist: the engine has no such image and could not "
            f"pull it ({_why(exc)})"
        ) from None


def _why(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)[:500]


def _project_files(project_dir: Path) -> list[tuple[str, Path]]:
    """(name inside the image's code directory, file) of the project, in a stable order."""
    found = []
    root = project_dir.resolve()
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in _EXCLUDED_DIRS)
        for name in sorted(files):
            path = Path(directory) / name
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                continue  # never copy host files from outside the project into an image
            found.append((path.relative_to(root).as_posix(), path))
    return found


def _content_tag(base_id: str, files: list[tuple[str, Path]], sdk_hash: str | None) -> str:
    digest = hashlib.sha256()
    digest.update(f"recipe {RECIPE_VERSION}\nbase {base_id}\nsdk {sdk_hash}\n".encode())
    for name, path in files:
        mode = "x" if os.access(path, os.X_OK) else "-"
        digest.update(f"{name}\0{mode}\0".encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def _dockerfile(base_image: str, install_sdk: bool, sdk_extras: tuple[str, ...]) -> str:
    lines = []
    extras = f"[{','.join(sdk_extras)}]" if sdk_extras else ""
    if install_sdk:
        lines += [
            f"FROM {base_image} AS mlgrid-sdk",
            "COPY mlgrid-build/ /tmp/mlgrid-build/",
            # The host's pip settings live only in this stage: PIP_CONFIG_FILE and PIP_CERT
            # are set for this one command, and only the virtualenv leaves the stage.
            "RUN if [ -s /tmp/mlgrid-build/ca.pem ]; then export PIP_CERT=/tmp/mlgrid-build/ca.pem; fi"
            f" && PIP_CONFIG_FILE=/tmp/mlgrid-build/pip.conf python3 -m venv --system-site-packages {SDK_PREFIX}"
            f" && PIP_CONFIG_FILE=/tmp/mlgrid-build/pip.conf {SDK_PREFIX}/bin/python -m pip install"
            " --disable-pip-version-check --no-input --no-cache-dir"
            f" /tmp/mlgrid-build/{sdk_wheel().path.name}{extras}",
        ]
    lines.append(f"FROM {base_image}")
    if install_sdk:
        lines += [
            f"COPY --from=mlgrid-sdk {SDK_PREFIX} {SDK_PREFIX}",
            f"ENV PATH={SDK_PREFIX}/bin:$PATH",
        ]
    lines += [f"COPY code/ {PROJECT_CODE_DIR}/", f"WORKDIR {PROJECT_CODE_DIR}"]
    return "\n".join(lines) + "\n"


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def _build_context(
    out: IO[bytes],
    base_image: str,
    files: list[tuple[str, Path]],
    install_sdk: bool,
    sdk_extras: tuple[str, ...],
) -> None:
    with tarfile.open(fileobj=out, mode="w") as archive:
        dockerfile = _dockerfile(base_image, install_sdk, sdk_extras)
        _add_bytes(archive, "Dockerfile", dockerfile.encode())
        for name, path in files:
            archive.add(str(path), arcname=f"code/{name}", recursive=False)
        if install_sdk:
            wheel = sdk_wheel()
            archive.add(str(wheel.path), arcname=f"mlgrid-build/{wheel.path.name}")
            pip = host_pip_settings()
            _add_bytes(archive, "mlgrid-build/pip.conf", pip.pip_conf.encode())
            _add_bytes(archive, "mlgrid-build/ca.pem", pip.ca_bundle or b"")
    out.seek(0)


def _stream_build(client: docker.DockerClient, context: IO[bytes], tag: str, log: Log) -> None:
    import docker

    try:
        output: Iterator[dict[str, Any]] = client.api.build(
            fileobj=context,
            custom_context=True,
            tag=tag,
            rm=True,
            forcerm=True,
            network_mode="host",  # pip reaches the index as the host does
            decode=True,
        )
        for item in output:
            if "error" in item:
                detail = item.get("errorDetail", {}).get("message") or item["error"]
                raise ImageBuildError(f"building image {tag} failed: {str(detail)[:2000]}")
            text = item.get("stream")
            if text:
                log(text)
    except docker.errors.DockerException as exc:
        raise ImageBuildError(f"building image {tag} failed: {_why(exc)}") from None


def build_project_image(
    client: docker.DockerClient,
    base_image: str,
    project_dir: Path,
    repository: str,
    *,
    install_sdk: bool = True,
    sdk_extras: tuple[str, ...] = (),
    log: Log = lambda _text: None,
    field: str = "docker_env.image",
) -> ProjectImage:
    """Builds (or reuses) ``repository:<content tag>`` FROM ``base_image`` with the project.

    ``base_image`` is pulled if the engine does not have it; an image that cannot be found is
    an InvalidParameterValue naming ``field``. ``sdk_extras`` (e.g. ``("embedded",)``, for runs
    that open a local store themselves) are installed with the SDK. Build output goes to
    ``log`` line by line.
    """
    import docker

    base = ensure_image(client, base_image, field, log)
    files = _project_files(project_dir)
    sdk_hash = f"{sdk_wheel().content_hash}{sorted(sdk_extras)}" if install_sdk else None
    tag = f"{repository}:{_content_tag(base.id, files, sdk_hash)}"
    try:
        existing = client.images.get(tag)
        log(f"reusing image {tag}\n")
        return ProjectImage(tag=tag, image_id=existing.id, built=False)
    except docker.errors.ImageNotFound:
        pass
    log(f"building image {tag} from {base_image}\n")
    with tempfile.TemporaryFile() as context:
        _build_context(context, base_image, files, install_sdk, sdk_extras)
        _stream_build(client, context, tag, log)
    image = client.images.get(tag)
    return ProjectImage(tag=tag, image_id=image.id, built=True)


def push_image(
    client: docker.DockerClient,
    image: ProjectImage,
    *,
    repository: str | None = None,
    auth_config: dict[str, str] | None = None,
    log: Log = lambda _text: None,
) -> str:
    """Pushes ``image`` (retagged into ``repository`` when given, e.g. a backend's
    ``repository-uri``) and returns ``repository@sha256:…``, the reference by digest.

    Credentials come from the Docker config unless ``auth_config`` (``username``,
    ``password``) is given.
    """
    import docker

    target = repository or image.repository
    content_tag = image.tag.rsplit(":", 1)[1]
    digest = None
    try:
        client.images.get(image.image_id).tag(target, content_tag)
        log(f"pushing {target}:{content_tag}\n")
        for item in client.api.push(
            target, content_tag, stream=True, decode=True, auth_config=auth_config
        ):
            if "error" in item:
                detail = item.get("errorDetail", {}).get("message") or item["error"]
                raise ImagePushError(f"pushing {target}:{content_tag} failed: {str(detail)[:2000]}")
            aux = item.get("aux") or {}
            found = _DIGEST.search(str(aux.get("Digest") or item.get("status") or ""))
            if found:
                digest = found.group(0)
    except docker.errors.DockerException as exc:
        raise ImagePushError(f"pushing {target}:{content_tag} failed: {_why(exc)}") from None
    if digest is None:
        raise ImagePushError(
            f"pushing {target}:{content_tag}: the engine did not report the pushed digest"
        )
    log(f"pushed {target}@{digest}\n")
    return f"{target}@{digest}"
