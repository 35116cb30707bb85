"""The model directory: save it, read it back.

Layout (MLflow's python_function flavor)::

    MLmodel              YAML descriptor: flavors, run_id, artifact_path, uuid, time, versions
    python_model.pkl     the PythonModel, pickled with cloudpickle
    artifacts/<name>...  copies of the files/directories given as ``artifacts``
    requirements.txt     pip requirements
    python_env.yaml      python version and build dependencies (virtualenv env manager)
    conda.yaml           the same for conda (conda env manager)
    input_example.json   the input example, and serving_input_example.json (when given)

The descriptor carries MLflow's fields (``signature``, ``saved_input_example_info``,
``model_uuid``, ``utc_time_created``, ``model_size_bytes``) so the real ``mlflow`` loads these
models through ``loader_module: mlgrid.pyfunc`` (:func:`mlgrid.pyfunc._load_pyfunc`), and
mlgrid loads MLflow's: its python models natively, any other flavor through the loader module
its MLmodel names (``mlflow.sklearn``, ...), imported as MLflow does.
"""

from __future__ import annotations

import importlib
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

from .model import (
    FunctionModel,
    PyFuncModel,
    PythonModel,
    PythonModelContext,
    _PythonModelPredictor,
)

MLMODEL_FILE = "MLmodel"
PICKLE_FILE = "python_model.pkl"
REQUIREMENTS_FILE = "requirements.txt"
PYTHON_ENV_FILE = "python_env.yaml"
ARTIFACTS_DIR = "artifacts"
CODE_DIR = "code"
CONDA_ENV_FILE = "conda.yaml"
FLAVOR = "python_function"
LOADER_MODULE = "mlgrid.pyfunc"
#: Loader modules whose models are a pickled PythonModel that mlgrid unpickles itself.
PYTHON_MODEL_LOADERS = (LOADER_MODULE, "mlflow.pyfunc.model")


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
    signature: Any = None,
    input_example: Any = None,
) -> dict[str, Any]:
    """Writes a python_function model directory at ``path`` (which must not exist or be empty).

    ``python_model`` is a :class:`PythonModel` or a plain function of the model input.
    ``code_paths`` (files or packages the model imports) are copied into ``code/`` and put on
    ``sys.path`` when the model loads; ``conda_env`` (a dict or a YAML file) becomes
    ``conda.yaml``. ``signature`` (a :class:`mlgrid.models.ModelSignature`, e.g. from
    ``infer_signature``) is checked at ``predict``; without one, the inputs' part is inferred
    from ``input_example``; ``signature=False`` saves none. Returns the MLmodel descriptor.
    """
    from mlgrid.models.signature import ModelSignature

    if (
        signature is not None
        and signature is not False
        and not isinstance(signature, ModelSignature)
    ):
        raise InvalidParameterValue(
            f"signature must be a ModelSignature (see mlgrid.models.infer_signature), "
            f"not {type(signature).__name__}"
        )
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
    if signature is None and input_example is not None:
        from mlgrid.models.inference import infer_signature

        signature = infer_signature(input_example)
    target.mkdir(parents=True, exist_ok=True)
    try:
        return _write_model(
            target,
            python_model,
            artifacts,
            pip_requirements,
            extra_pip_requirements,
            model_config,
            metadata,
            code_paths,
            conda_env,
            run_id,
            artifact_path,
            signature or None,
            input_example,
        )
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # nothing half-written is left behind
        raise


def _write_model(
    target: Path,
    python_model: PythonModel,
    artifacts: dict[str, str] | None,
    pip_requirements: Sequence[str] | str | None,
    extra_pip_requirements: Sequence[str] | None,
    model_config: dict[str, Any] | None,
    metadata: dict[str, Any] | None,
    code_paths: Sequence[str | os.PathLike[str]] | None,
    conda_env: dict[str, Any] | str | None,
    run_id: str | None,
    artifact_path: str | None,
    signature: Any,
    input_example: Any,
) -> dict[str, Any]:
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
    else:  # MLflow writes one for every model: the same requirements, for the conda manager
        env = {
            "name": "mlgrid-env",
            "channels": ["conda-forge"],
            "dependencies": [f"python={python_version}", "pip", {"pip": requirements}],
        }
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
    if signature is not None:
        descriptor["signature"] = signature.to_dict()
    if input_example is not None:
        from mlgrid.models.examples import save_input_example

        descriptor["saved_input_example_info"] = save_input_example(input_example, target)
    descriptor["model_size_bytes"] = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
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
    if FLAVOR not in (descriptor.get("flavors") or {}):
        raise InvalidParameterValue(
            f"the model at {str(model_dir)!r} has no {FLAVOR} flavor; flavors: "
            f"{', '.join(descriptor.get('flavors') or {}) or 'none'}"
        )
    return dict(descriptor)


def _add_code_path(model_dir: Path, flavor: dict[str, Any]) -> None:
    if flavor.get("code"):
        # The model's own modules must import before unpickling can find their classes.
        code_dir = str((model_dir / flavor["code"]).resolve())
        if code_dir not in sys.path:
            sys.path.insert(0, code_dir)


def load_model_dir(model_dir: Path, model_config: dict[str, Any] | None = None) -> PyFuncModel:
    """Loads a model directory: mlgrid's and MLflow's pickled python models directly, other
    flavors through the loader module their MLmodel names."""
    descriptor = read_descriptor(model_dir)
    flavor = descriptor["flavors"][FLAVOR]
    _add_code_path(model_dir, flavor)
    config = {**(flavor.get("model_config") or {}), **(model_config or {})}
    loader = str(flavor.get("loader_module") or LOADER_MODULE)
    if loader in PYTHON_MODEL_LOADERS and "python_model" in flavor:
        python_model, context = _load_python_model(model_dir, flavor, config)
        predictor = _PythonModelPredictor(python_model, context)
        return PyFuncModel(predictor, descriptor, python_model=python_model, context=context)
    predictor = _load_with_module(loader, model_dir, flavor, config)
    return PyFuncModel(predictor, descriptor, context=PythonModelContext(model_config=config))


def _load_python_model(
    model_dir: Path, flavor: dict[str, Any], config: dict[str, Any]
) -> tuple[Any, PythonModelContext]:
    pickled = model_dir / flavor.get("python_model", PICKLE_FILE)
    if flavor.get("python_model_compression") or not pickled.is_file():
        raise InvalidParameterValue(
            f"the model at {str(model_dir)!r} has no readable python model at "
            f"{flavor.get('python_model')!r}"
        )
    try:
        with open(pickled, "rb") as fh:
            python_model = _cloudpickle().load(fh)
    except ModuleNotFoundError as exc:
        raise MlgridException(
            f"loading the model at {str(model_dir)!r} needs the module {exc.name!r}, which is "
            f"not installed here; the model's {REQUIREMENTS_FILE} lists what it needs"
        ) from exc
    artifacts = {
        name: str((model_dir / entry["path"]).resolve())
        for name, entry in (flavor.get("artifacts") or {}).items()
    }
    context = PythonModelContext(artifacts=artifacts, model_config=config)
    python_model.load_context(context)
    return python_model, context


def _load_with_module(
    loader: str, model_dir: Path, flavor: dict[str, Any], config: dict[str, Any]
) -> Any:
    """MLflow's rule: ``import_module(loader_module)._load_pyfunc(<model dir>/<data>)``."""
    data_path = str(model_dir / flavor["data"]) if flavor.get("data") else str(model_dir)
    try:
        module = importlib.import_module(loader)
    except ModuleNotFoundError as exc:
        package = loader.split(".")[0]
        raise MlgridException(
            f"the model at {str(model_dir)!r} is loaded by its flavor's module {loader!r} "
            f"(loader_module in its MLmodel), which cannot be imported here: {exc.name!r} is "
            f"missing. Install it (pip install {package}) or serve the model with "
            f"--env-manager virtualenv, which installs the model's {REQUIREMENTS_FILE}"
        ) from exc
    load = getattr(module, "_load_pyfunc", None)
    if load is None:
        raise MlgridException(f"the loader module {loader!r} has no _load_pyfunc function")
    return load(data_path, config) if config else load(data_path)
