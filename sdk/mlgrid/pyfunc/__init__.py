"""Model packaging (MLflow's ``mlflow.pyfunc``): save, log, register and load python models.

class Doubler(mlgrid.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return model_input * 2

info = mlgrid.pyfunc.log_model("model", python_model=Doubler(), registered_model_name="dbl")
model = mlgrid.pyfunc.load_model("models:/dbl/latest")   # or info.model_uri
model.predict(numpy.arange(3))
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist
from mlgrid.models.signature import ModelSignature

from .model import FunctionModel, PyFuncModel, PythonModel, PythonModelContext
from .packaging import (
    default_pip_requirements,
    load_model_dir,
    read_descriptor,
    save_model,
)

__all__ = [
    "FunctionModel",
    "ModelInfo",
    "PyFuncModel",
    "PythonModel",
    "PythonModelContext",
    "default_pip_requirements",
    "get_model_descriptor",
    "get_model_dir",
    "load_model",
    "log_model",
    "save_model",
]


@dataclass
class ModelInfo:
    """What ``log_model`` logged (MLflow's ``ModelInfo``)."""

    artifact_path: str
    run_id: str
    model_uri: str
    model_uuid: str
    utc_time_created: str
    flavors: dict[str, Any] = field(default_factory=dict)
    mlgrid_version: str = ""
    metadata: dict[str, Any] | None = None
    #: The signature saved with the model (MLflow's JSON strings), if any.
    signature: dict[str, Any] | None = None
    #: The registered version when ``registered_model_name`` was given.
    registered_model_version: str | None = None


def log_model(
    artifact_path: str | None = None,
    python_model: PythonModel | Callable[[Any], Any] | None = None,
    artifacts: dict[str, str] | None = None,
    pip_requirements: Sequence[str] | str | None = None,
    extra_pip_requirements: Sequence[str] | None = None,
    registered_model_name: str | None = None,
    await_registration_for: int = 300,
    model_config: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    *,
    name: str | None = None,
    run_id: str | None = None,
    code_paths: Sequence[str | os.PathLike[str]] | None = None,
    conda_env: dict[str, Any] | str | None = None,
    signature: ModelSignature | bool | None = None,
    input_example: Any = None,
) -> ModelInfo:
    """Saves the model to a temporary directory and logs it as artifacts of the active run
    (started if none, as MLflow does) under ``artifact_path`` (``name`` in MLflow 3 spelling);
    registers it as a new version of ``registered_model_name`` when given. ``signature`` and
    ``input_example`` as for :func:`save_model`."""
    from mlgrid import fluent

    path = artifact_path or name or "model"
    if path.startswith("/") or ".." in path.split("/"):
        raise InvalidParameterValue(
            f"artifact_path {path!r} must be a relative path inside the run"
        )
    client = fluent.state.client()
    run_id = run_id or fluent.get_or_start_run().info.run_id
    with tempfile.TemporaryDirectory(prefix="mlgrid-model-") as tmp:
        local = Path(tmp) / "model"
        descriptor = save_model(
            local,
            python_model=python_model,
            artifacts=artifacts,
            pip_requirements=pip_requirements,
            extra_pip_requirements=extra_pip_requirements,
            model_config=model_config,
            metadata=metadata,
            code_paths=code_paths,
            conda_env=conda_env,
            run_id=run_id,
            artifact_path=path,
            signature=signature,
            input_example=input_example,
        )
        client.log_artifacts(run_id, str(local), path)
    info = ModelInfo(
        artifact_path=path,
        run_id=run_id,
        model_uri=f"runs:/{run_id}/{path}",
        model_uuid=descriptor["model_uuid"],
        utc_time_created=descriptor["utc_time_created"],
        flavors=descriptor["flavors"],
        mlgrid_version=descriptor["mlgrid_version"],
        metadata=descriptor.get("metadata"),
        signature=descriptor.get("signature"),
    )
    if registered_model_name:
        from mlgrid.registry.fluent import register_model

        version = register_model(
            info.model_uri,
            registered_model_name,
            await_registration_for=await_registration_for,
            client=client,
        )
        info.registered_model_version = version.version
    return info


def _local_dir(uri: str) -> Path | None:
    """The directory a local path or file:// URI names, when it exists on this machine."""
    from .packaging import _local_path

    local = _local_path(uri)
    return local if local is not None and local.is_dir() else None


def _artifact_location(model_uri: str) -> str:
    """Turns runs:/ and models:/ URIs into the artifact URI of the model's files."""
    from mlgrid import fluent

    if model_uri.startswith("models:/"):
        from mlgrid.models import is_logged_model_uri, resolve_model_uri

        client = fluent.state.client()
        if is_logged_model_uri(model_uri):  # MLflow 3's models:/<model_id>
            model_id = model_uri[len("models:/") :].strip("/")
            return str(client.get_logged_model(model_id).artifact_location)
        return resolve_model_uri(model_uri, client)
    if model_uri.startswith("runs:/"):
        run_id, _, path = model_uri[len("runs:/") :].lstrip("/").partition("/")
        if not run_id:
            raise InvalidParameterValue(
                f"model URI {model_uri!r} names no run: use runs:/<run_id>/<path>"
            )
        root = str(fluent.state.client().get_run(run_id).info.artifact_uri or "").rstrip("/")
        return f"{root}/{path.strip('/')}" if path.strip("/") else root
    return model_uri


def get_model_dir(model_uri: str, dst_path: str | os.PathLike[str] | None = None) -> Path:
    """A local directory holding the model's files (downloaded unless already local)."""
    location = _artifact_location(model_uri)
    local = _local_dir(location)
    if local is not None:  # on this machine already: read in place (read_descriptor checks it)
        return local
    from .packaging import _local_path

    missing = _local_path(location)
    if missing is not None:  # a local path (or file: URI) that is not a directory
        what = "is a file, not a model directory" if missing.exists() else "does not exist"
        raise ResourceDoesNotExist(f"model {model_uri!r}: {str(missing)!r} {what}")
    from mlgrid.artifacts import download_artifacts

    target = str(dst_path) if dst_path is not None else tempfile.mkdtemp(prefix="mlgrid-load-")
    return Path(download_artifacts(artifact_uri=location, dst_path=target))


def load_model(
    model_uri: str,
    suppress_warnings: bool = False,
    dst_path: str | os.PathLike[str] | None = None,
    model_config: dict[str, Any] | None = None,
) -> PyFuncModel:
    """Loads a python_function model from a local path, ``runs:/``, ``models:/`` or artifact
    URI; the result's ``predict(data)`` calls the model's ``predict(context, data)``."""
    return load_model_dir(get_model_dir(model_uri, dst_path), model_config)


def get_model_descriptor(model_uri: str) -> dict[str, Any]:
    """The MLmodel descriptor of a model, without unpickling it."""
    return read_descriptor(get_model_dir(model_uri))


def _load_pyfunc(data_path: str, model_config: dict[str, Any] | None = None) -> Any:
    """MLflow's loader hook: ``mlflow.pyfunc.load_model`` calls this for a model whose MLmodel
    names ``loader_module: mlgrid.pyfunc``. MLflow checks inputs against the signature itself,
    so it gets the bare predictor (``predict(data, params=None)``)."""
    return load_model_dir(Path(data_path), model_config)._predictor
