"""The model directory: save it, read it back.

Layout (MLflow's python_function flavor)::

    MLmodel              YAML descriptor: flavors, run_id, artifact_path, uuid, time, versions
    python_model.pkl     the PythonModel, pickled with cloudpickle
    artifacts/<name>...  copies of the files/directories given as ``artifacts``
    requirements.txt     pip requirements
    python_env.yaml      python version and build dependencies (virtualenv env manager)
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import yaml

import mlgrid
from mlgrid.exceptions import InvalidParameterValue, MlgridException

from .model import FunctionModel, PyFuncModel, PythonModel, PythonModelContext

MLMODEL_FILE = "MLmodel"
PICKLE_FILE = "python_model.pkl"
REQUIREMENTS_FILE = "requirements.txt"
PYTHON_ENV_FILE = "python_env.yaml"
ARTIFACTS_DIR = "artifacts"
CODE_DIR = "code"
CONDA_ENV_FILE = "conda.yaml"
FLAVOR = "python_function"
LOADER_MODULE = "mlgrid.pyfunc"


def _cloudpickle() -> Any:
    try:
        import cloudpickle
    except ImportError as exc:
        raise MlgridException(
            "saving or loading a python model needs cloudpickle: pip install cloudpickle"
        ) from exc
    return cloudpickle


def default_pip_requirements() -> list[str]:
    """mlgrid and cloudpickle at the versions in use (what loading the model needs)."""
    return [f"mlgrid=={mlgrid.__version__}", f"cloudpickle=={_cloudpickle().__version__}"]


def _requirements(
    pip_requirements: Sequence[str] | str | None, extra: Sequence[str] | None
) -> list[str]:
    if isinstance(pip_requirements, str):  # a path to a requirements file, as MLflow accepts
        lines = Path(pip_requirements).read_text().splitlines()
        base = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    elif pip_requirements is not None:
        base = [str(r) for r in pip_requirements]
    else:
        base = default_pip_requirements()
    return [*base, *(str(r) for r in extra or [])]


def _local_path(uri: str) -> Path | None:
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return Path(url2pathname(parts.path))
    if not parts.scheme or len(parts.scheme) == 1:
        return Path(uri)
    return None


def _copy_artifacts(artifacts: dict[str, str], target: Path) -> dict[str, dict[str, str]]:
    """Copies each artifact into ``target/artifacts/<name>``; remote URIs are downloaded."""
    described: dict[str, dict[str, str]] = {}
    for name, uri in artifacts.items():
        if not name or "/" in name or name in (".", ".."):
            raise InvalidParameterValue(f"artifact name {name!r} must be a plain file name")
        destination = target / ARTIFACTS_DIR / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        local = _local_path(uri)
        if local is None:
            from mlgrid.artifacts import download_artifacts

            local = Path(download_artifacts(artifact_uri=uri))
        if local.is_dir():
            shutil.copytree(local, destination)
        elif local.is_file():
            shutil.copy2(local, destination)
        else:
            raise InvalidParameterValue(f"artifact {name!r}: {uri!r} does not exist")
        described[name] = {"path": f"{ARTIFACTS_DIR}/{name}", "uri": uri}
    return described


def _copy_code(code_paths: Sequence[str | os.PathLike[str]], code_dir: Path) -> None:
    code_dir.mkdir(parents=True, exist_ok=True)
    for entry in code_paths:
        source = Path(entry)
        if source.is_dir():
            shutil.copytree(source, code_dir / source.name, dirs_exist_ok=True)
        elif source.is_file():
            shutil.copy2(source, code_dir / source.name)
        else:
            raise InvalidParameterValue(f"code path {str(source)!r} does not exist")


def save_model(
    path: str | os.PathLike[str],
    python_model: PythonModel | Callable[[Any], Any] | None = None,
    artifacts: dict[str, str] | None = None,
    pip_requirements: Sequence[str] | str | None = None,
    extra_pip_requirements: Sequence[str] | None = None,
    model_config: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    *,
    code_paths: Sequence[str | os.PathLike[str]] | None = None,
    conda_env: dict[str, Any] | str | None = None,
    run_id: str | None = None,
    artifact_path: str | None = None,
) -> dict[str, Any]:
    """Writes a python_function model directory at ``path`` (which must not exist or be empty).

    ``python_model`` is a :class:`PythonModel` or a plain function of the model input.
    ``code_paths`` (files or packages the model imports) are copied into ``code/`` and put on
    ``sys.path`` when the model loads; ``conda_env`` (a dict or a YAML file) becomes
    ``conda.yaml``. Returns the MLmodel descriptor that was written.
    """
    if python_model is None:
        raise InvalidParameterValue("python_model is required: a PythonModel or a function")
    if not isinstance(python_model, PythonModel):
        if not callable(python_model):
            raise InvalidParameterValue(
                f"python_model must be a PythonModel or a function, not {type(python_model).__name__}"
            )
        python_model = FunctionModel(python_model)
    target = Path(path)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidParameterValue(f"path {str(target)!r} already exists and is not empty")
    target.mkdir(parents=True, exist_ok=True)
    with open(target / PICKLE_FILE, "wb") as fh:
        _cloudpickle().dump(python_model, fh)
    described = _copy_artifacts(dict(artifacts or {}), target)
    requirements = _requirements(pip_requirements, extra_pip_requirements)
    (target / REQUIREMENTS_FILE).write_text("".join(f"{r}\n" for r in requirements))
    python_version = ".".join(str(n) for n in sys.version_info[:3])
    python_env = {
        "python": python_version,
        "build_dependencies": ["pip", "setuptools", "wheel"],
        "dependencies": [f"-r {REQUIREMENTS_FILE}"],
    }
    (target / PYTHON_ENV_FILE).write_text(yaml.safe_dump(python_env, sort_keys=False))
    flavor: dict[str, Any] = {
        "loader_module": LOADER_MODULE,
        "python_model": PICKLE_FILE,
        "python_version": python_version,
        "env": {"virtualenv": PYTHON_ENV_FILE},
        "cloudpickle_version": _cloudpickle().__version__,
    }
    if described:
        flavor["artifacts"] = described
    if code_paths:
        _copy_code(code_paths, target / CODE_DIR)
        flavor["code"] = CODE_DIR
    if conda_env is not None:
        env = (
            yaml.safe_load(Path(conda_env).read_text()) if isinstance(conda_env, str) else conda_env
        )
        (target / CONDA_ENV_FILE).write_text(yaml.safe_dump(env, sort_keys=False))
        flavor["env"]["conda"] = CONDA_ENV_FILE
    if model_config:
        flavor["model_config"] = dict(model_config)
    descriptor: dict[str, Any] = {
        "artifact_path": artifact_path,
        "flavors": {FLAVOR: flavor},
        "mlgrid_version": mlgrid.__version__,
        "model_uuid": uuid.uuid4().hex,
        "run_id": run_id,
        "utc_time_created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f"),
    }
    if metadata:
        descriptor["metadata"] = dict(metadata)
    descriptor = {k: v for k, v in descriptor.items() if v is not None}
    (target / MLMODEL_FILE).write_text(yaml.safe_dump(descriptor, sort_keys=False))
    return descriptor


def read_descriptor(model_dir: Path) -> dict[str, Any]:
    """The parsed MLmodel file of a model directory (clear error when it is not one)."""
    descriptor_path = model_dir / MLMODEL_FILE
    if not descriptor_path.is_file():
        raise InvalidParameterValue(
            f"{str(model_dir)!r} is not a model directory: it has no {MLMODEL_FILE} file"
        )
    descriptor = yaml.safe_load(descriptor_path.read_text()) or {}
    if FLAVOR not in descriptor.get("flavors", {}):
        raise InvalidParameterValue(
            f"the model at {str(model_dir)!r} has no {FLAVOR} flavor; flavors: "
            f"{', '.join(descriptor.get('flavors', {})) or 'none'}"
        )
    return dict(descriptor)


def load_model_dir(model_dir: Path, model_config: dict[str, Any] | None = None) -> PyFuncModel:
    """Loads a model directory written by :func:`save_model`."""
    descriptor = read_descriptor(model_dir)
    flavor = descriptor["flavors"][FLAVOR]
    if flavor.get("code"):
        # The model's own modules must import before unpickling can find their classes.
        code_dir = str((model_dir / flavor["code"]).resolve())
        if code_dir not in sys.path:
            sys.path.insert(0, code_dir)
    with open(model_dir / flavor.get("python_model", PICKLE_FILE), "rb") as fh:
        python_model = _cloudpickle().load(fh)
    artifacts = {
        name: str((model_dir / entry["path"]).resolve())
        for name, entry in (flavor.get("artifacts") or {}).items()
    }
    config = {**(flavor.get("model_config") or {}), **(model_config or {})}
    context = PythonModelContext(artifacts=artifacts, model_config=config)
    python_model.load_context(context)
    return PyFuncModel(python_model, context, descriptor)
