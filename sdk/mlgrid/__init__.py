"""mlgrid: an ML lifecycle platform with MLflow's semantics, built as gRPC services.

``import mlgrid as mlflow`` runs ordinary MLflow tracking scripts: the fluent functions below
have MLflow's names and signatures. Artifact, registry, pyfunc and projects helpers load on
first use, so ``import mlgrid`` stays light and a missing optional part fails only when used.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

from mlgrid import entities, exceptions
from mlgrid.client import Client, MlflowClient
from mlgrid.exceptions import MlflowException, MlgridException
from mlgrid.fluent import (
    ActiveRun,
    active_run,
    delete_run,
    delete_tag,
    end_run,
    flush_async_logging,
    get_metric_history,
    get_parent_run,
    get_run,
    last_active_run,
    log_input,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    set_registry_uri,
    set_tag,
    set_tags,
    set_tracking_uri,
    start_run,
)
from mlgrid.fluent_experiments import (
    create_experiment,
    delete_experiment,
    get_experiment,
    get_experiment_by_name,
    set_experiment,
    set_experiment_tag,
    set_experiment_tags,
)
from mlgrid.fluent_search import search_experiments, search_runs
from mlgrid.tracking_uri import get_registry_uri, get_tracking_uri


def _tracking_namespace() -> types.ModuleType:
    """``mlgrid.tracking``: MLflow's ``mlflow.tracking`` names, for scripts that write
    ``mlflow.tracking.MlflowClient()`` or ``from mlflow.tracking import MlflowClient``."""
    module = types.ModuleType("mlgrid.tracking", _tracking_namespace.__doc__)
    module.MlflowClient = Client  # type: ignore[attr-defined]
    module.set_tracking_uri = set_tracking_uri  # type: ignore[attr-defined]
    module.get_tracking_uri = get_tracking_uri  # type: ignore[attr-defined]
    module.set_registry_uri = set_registry_uri  # type: ignore[attr-defined]
    module.get_registry_uri = get_registry_uri  # type: ignore[attr-defined]
    module.__all__ = [  # type: ignore[attr-defined]
        "MlflowClient",
        "get_registry_uri",
        "get_tracking_uri",
        "set_registry_uri",
        "set_tracking_uri",
    ]
    return module


tracking = sys.modules.setdefault("mlgrid.tracking", _tracking_namespace())

#: Names served from modules other areas own, imported when first used: name -> module.
_LAZY_FUNCTIONS: dict[str, str] = {
    "log_artifact": "mlgrid.artifacts.fluent",
    "log_artifacts": "mlgrid.artifacts.fluent",
    "log_text": "mlgrid.artifacts.fluent",
    "log_dict": "mlgrid.artifacts.fluent",
    "log_figure": "mlgrid.artifacts.fluent",
    "log_image": "mlgrid.artifacts.fluent",
    "load_text": "mlgrid.artifacts.fluent",
    "load_dict": "mlgrid.artifacts.fluent",
    "get_artifact_uri": "mlgrid.artifacts.fluent",
    "register_model": "mlgrid.registry.fluent",
}
#: Submodules reachable as attributes (``mlgrid.pyfunc.load_model``) without an import.
_LAZY_MODULES = ("artifacts", "config", "projects", "pyfunc")

__all__ = [
    "ActiveRun",
    "Client",
    "MlflowClient",
    "MlflowException",
    "MlgridException",
    "__version__",
    "active_run",
    "create_experiment",
    "delete_experiment",
    "delete_run",
    "delete_tag",
    "end_run",
    "entities",
    "exceptions",
    "flush_async_logging",
    "get_artifact_uri",
    "get_experiment",
    "get_experiment_by_name",
    "get_metric_history",
    "get_parent_run",
    "get_registry_uri",
    "get_run",
    "get_tracking_uri",
    "last_active_run",
    "load_dict",
    "load_text",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_figure",
    "log_image",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_text",
    "register_model",
    "search_experiments",
    "search_runs",
    "set_experiment",
    "set_experiment_tag",
    "set_experiment_tags",
    "set_registry_uri",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
    "tracking",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY_FUNCTIONS.get(name)
    if module_name is not None:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise AttributeError(
                f"mlgrid.{name} is provided by {module_name}, which failed to import: {exc}"
            ) from exc
        value = getattr(module, name)
        globals()[name] = value  # later lookups skip __getattr__
        return value
    if name in _LAZY_MODULES:
        return importlib.import_module(f"mlgrid.{name}")
    raise AttributeError(f"module 'mlgrid' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_FUNCTIONS) | set(_LAZY_MODULES))
