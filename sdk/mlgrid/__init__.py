"""mlgrid: an ML lifecycle platform with MLflow's semantics, built as gRPC services.

``import mlgrid as mlflow`` runs ordinary MLflow tracking scripts: the fluent functions below
have MLflow's names and signatures. Every name loads its module on first use, so importing a
part of mlgrid (``mlgrid.environment``, ``mlgrid.api``, the ``mlgrid`` command) does not load
the SDK's client, gRPC and protobuf with it: the ``mlgrid up`` supervisor and each service
process stay smaller, and a missing optional part fails only when used.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Before anything imports grpc: its C core reads its settings once, at that import (_grpc_io.py).
importlib.import_module("mlgrid._grpc_io").install()

if TYPE_CHECKING:
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


def _names(module: str, *names: str) -> dict[str, str]:
    return dict.fromkeys(names, module)


#: Every public name of the package -> the module that defines it (imported on first use).
_LAZY_NAMES: dict[str, str] = {
    **_names("mlgrid.client", "Client", "MlflowClient"),
    **_names("mlgrid.exceptions", "MlflowException", "MlgridException"),
    **_names(
        "mlgrid.fluent",
        "ActiveRun",
        "active_run",
        "delete_run",
        "delete_tag",
        "end_run",
        "flush_async_logging",
        "get_metric_history",
        "get_parent_run",
        "get_run",
        "last_active_run",
        "log_input",
        "log_metric",
        "log_metrics",
        "log_param",
        "log_params",
        "set_registry_uri",
        "set_tag",
        "set_tags",
        "set_tracking_uri",
        "start_run",
    ),
    **_names(
        "mlgrid.fluent_experiments",
        "create_experiment",
        "delete_experiment",
        "get_experiment",
        "get_experiment_by_name",
        "set_experiment",
        "set_experiment_tag",
        "set_experiment_tags",
    ),
    **_names("mlgrid.fluent_search", "search_experiments", "search_runs"),
    **_names("mlgrid.tracking_uri", "get_registry_uri", "get_tracking_uri"),
    **_names(
        "mlgrid.artifacts.fluent",
        "log_artifact",
        "log_artifacts",
        "log_text",
        "log_dict",
        "log_figure",
        "log_image",
        "load_text",
        "load_dict",
        "get_artifact_uri",
    ),
    **_names("mlgrid.registry.fluent", "register_model"),
}

#: ``mlgrid.tracking``: MLflow's ``mlflow.tracking`` names, for scripts that write
#: ``mlflow.tracking.MlflowClient()`` or ``from mlflow.tracking import MlflowClient``.
_TRACKING_NAMES = {
    "MlflowClient": ("mlgrid.client", "Client"),
    "set_tracking_uri": ("mlgrid.fluent", "set_tracking_uri"),
    "get_tracking_uri": ("mlgrid.tracking_uri", "get_tracking_uri"),
    "set_registry_uri": ("mlgrid.fluent", "set_registry_uri"),
    "get_registry_uri": ("mlgrid.tracking_uri", "get_registry_uri"),
}


def _tracking_namespace() -> types.ModuleType:
    module = types.ModuleType("mlgrid.tracking", "MLflow's mlflow.tracking names.")

    def lookup(name: str) -> Any:
        found = _TRACKING_NAMES.get(name)
        if found is None:
            raise AttributeError(f"module 'mlgrid.tracking' has no attribute {name!r}")
        value = getattr(importlib.import_module(found[0]), found[1])
        setattr(module, name, value)
        return value

    module.__getattr__ = lookup  # type: ignore[method-assign]  # PEP 562, as a module's own
    module.__all__ = sorted(_TRACKING_NAMES)  # type: ignore[attr-defined]
    return module


tracking = sys.modules.setdefault("mlgrid.tracking", _tracking_namespace())

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
    module_name = _LAZY_NAMES.get(name)
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
    # A submodule (mlgrid.entities, mlgrid.pyfunc, ...) reachable as an attribute without an
    # import, as when this package imported its parts eagerly.
    if not name.startswith("_") and importlib.util.find_spec(f"mlgrid.{name}") is not None:
        return importlib.import_module(f"mlgrid.{name}")
    raise AttributeError(f"module 'mlgrid' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_NAMES) | {"entities", "exceptions"})
