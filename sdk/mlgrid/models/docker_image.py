"""``mlgrid models build-docker``: an image that serves one model (MLflow's ``build-docker``).

The image is ``--base-image`` (any image with ``python3`` and its ``venv`` module; the Python
minor version must be this one's) plus a virtualenv at ``/opt/mlgrid/env`` holding the model's
requirements, the running mlgrid and pandas, and the model's files at ``/opt/ml/model``. It
serves on port 8080 (as MLflow's images do): ``docker run -p 5001:8080 <image>``; arguments
after the image replace ``-p 8080`` (e.g. ``-p 9000 -w 4``).

Packages are never fetched inside the build: pip builds or takes wheels here (where the
index, its certificates and pip's settings are), they are copied into the build context, and the
image installs them with ``--no-index``. So a build needs no network and no credentials in the
image, and the running mlgrid is installed as it is here, not as some index has it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from mlgrid.exceptions import InvalidParameterValue, MlgridException

from .environments import _pip_dependencies, mlgrid_requirement

__all__ = ["DEFAULT_BASE_IMAGE", "build_model_image", "dockerfile"]

DEFAULT_BASE_IMAGE = "python:{major}.{minor}-slim"
MODEL_PATH = "/opt/ml/model"
ENV_PATH = "/opt/mlgrid/env"
PORT = 8080


def dockerfile(base_image: str) -> str:
    return f"""FROM {base_image}
COPY wheels /tmp/wheels
COPY requirements.txt /tmp/requirements.txt
RUN python3 -m venv {ENV_PATH} \\
 && {ENV_PATH}/bin/pip install --no-index --find-links /tmp/wheels -r /tmp/requirements.txt \\
 && rm -rf /tmp/wheels /root/.cache
COPY model {MODEL_PATH}
ENV MLFLOW_DISABLE_TELEMETRY=true
EXPOSE {PORT}
ENTRYPOINT ["{ENV_PATH}/bin/mlgrid", "models", "serve", "-m", "{MODEL_PATH}", "-h", "0.0.0.0"]
CMD ["-p", "{PORT}"]
"""


def _requirements(model_dir: Path) -> list[str]:
    env_file = model_dir / "python_env.yaml"
    spec = yaml.safe_load(env_file.read_text()) if env_file.is_file() else None
    if isinstance(spec, dict):
        deps = list(spec.get("dependencies") or [])
    elif (model_dir / "requirements.txt").is_file():
        deps = ["-r requirements.txt"]
    else:
        deps = []
    return [*_pip_dependencies(model_dir, deps), mlgrid_requirement()]


def _wheels(requirements: list[str], target: Path, log: Callable[[str], None]) -> None:
    """Wheels of the requirements and everything they need, built or taken here."""
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check"]
    command += ["--wheel-dir", str(target), *requirements]
    log(f"collecting wheels: {' '.join(requirements)}\n")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise MlgridException(
            f"pip could not collect the model's packages:\n{done.stderr.strip()[-2000:]}"
        )


def _docker_client() -> Any:
    try:
        import docker
    except ImportError as exc:
        raise MlgridException(
            "build-docker needs the docker package: pip install docker (or 'mlgrid[server]')"
        ) from exc
    try:
        return docker.from_env()
    except docker.errors.DockerException as exc:
        raise MlgridException(
            f"no container engine answers (DOCKER_HOST or the default socket): {exc}"
        ) from exc


def build_model_image(
    model_dir: Path, image: str, base_image: str | None, log: Callable[[str], None]
) -> str:
    """Builds ``image`` serving the model in ``model_dir``; returns the image id."""
    if not (model_dir / "MLmodel").is_file():
        raise InvalidParameterValue(f"{str(model_dir)!r} is not a model directory (no MLmodel)")
    base = base_image or DEFAULT_BASE_IMAGE.format(
        major=sys.version_info.major, minor=sys.version_info.minor
    )
    client = _docker_client()
    with tempfile.TemporaryDirectory(prefix="mlgrid-image-") as scratch:
        context = Path(scratch)
        shutil.copytree(model_dir, context / "model")
        requirements = _requirements(model_dir)
        wheels = context / "wheels"
        wheels.mkdir()
        _wheels(requirements, wheels, log)
        # The image installs by name from the wheels; a direct reference (name @ file://...)
        # would point at this machine.
        names = [r.split(" @ ", 1)[0] if " @ " in r else r for r in requirements]
        (context / "requirements.txt").write_text("".join(f"{n}\n" for n in names))
        (context / "Dockerfile").write_text(dockerfile(base))
        log(f"building image {image} from {base}\n")
        import docker

        try:
            built, _logs = client.images.build(path=str(context), tag=image, rm=True)
        except docker.errors.BuildError as exc:
            lines = [str(c.get("stream", "")).strip() for c in exc.build_log if c.get("stream")]
            tail = "\n".join(lines[-15:])
            raise MlgridException(f"building image {image} failed: {exc.msg}\n{tail}") from exc
        except docker.errors.APIError as exc:
            raise MlgridException(f"building image {image} failed: {exc}") from exc
    return str(built.id)
