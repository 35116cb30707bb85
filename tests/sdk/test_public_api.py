"""The public API is a contract: changes to it must show up in review (snapshot of __all__)."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import mlgrid
import mlgrid.client
import mlgrid.entities

PUBLIC_API = [
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

ENTITIES = [
    "Dataset",
    "DatasetInput",
    "DatasetSummary",
    "Experiment",
    "ExperimentTag",
    "InputTag",
    "LifecycleStage",
    "LoggedModel",
    "LoggedModelInput",
    "LoggedModelOutput",
    "LoggedModelParameter",
    "LoggedModelStatus",
    "LoggedModelTag",
    "Metric",
    "PagedList",
    "Param",
    "Run",
    "RunData",
    "RunInfo",
    "RunInputs",
    "RunOutputs",
    "RunStatus",
    "RunTag",
    "SourceType",
    "ViewType",
]


def test_public_api_snapshot() -> None:
    assert sorted(mlgrid.__all__) == PUBLIC_API


def test_entities_snapshot() -> None:
    assert sorted(mlgrid.entities.__all__) == ENTITIES


def test_mlflow_client_is_the_client() -> None:
    assert mlgrid.MlflowClient is mlgrid.client.Client
    assert mlgrid.tracking.MlflowClient is mlgrid.client.Client
    from mlgrid.tracking import MlflowClient  # as scripts write it for mlflow.tracking

    assert MlflowClient is mlgrid.client.Client


def test_every_public_name_resolves() -> None:
    for name in mlgrid.__all__:
        assert getattr(mlgrid, name) is not None, name


#: MLflow's parameter names (in order) for the fluent functions scripts call most.
MLFLOW_SIGNATURES = {
    "start_run": [
        "run_id",
        "experiment_id",
        "run_name",
        "nested",
        "parent_run_id",
        "tags",
        "description",
        "log_system_metrics",
    ],
    "log_param": ["key", "value", "synchronous"],
    "log_metric": ["key", "value", "step", "synchronous", "timestamp", "run_id"],
    "log_metrics": ["metrics", "step", "synchronous", "run_id", "timestamp"],
    "set_experiment": ["experiment_name", "experiment_id"],
    "search_runs": [
        "experiment_ids",
        "filter_string",
        "run_view_type",
        "max_results",
        "order_by",
        "output_format",
        "search_all_experiments",
        "experiment_names",
    ],
    "end_run": ["status"],
}


@pytest.mark.parametrize("name", sorted(MLFLOW_SIGNATURES))
def test_fluent_signatures_match_mlflow(name: str) -> None:
    parameters = list(inspect.signature(getattr(mlgrid, name)).parameters)
    assert parameters == MLFLOW_SIGNATURES[name]


def test_import_is_light_and_lazy_parts_load_on_use() -> None:
    code = (
        "import sys, mlgrid\n"
        "heavy = [m for m in ('pandas', 'mlgrid.pyfunc', 'mlgrid.projects', 'mlgrid_services')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
        "print(mlgrid.config.enable_async_logging.__module__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "mlgrid.config"]


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'log_everything'"):
        _ = mlgrid.log_everything  # type: ignore[attr-defined]


#: MLflow's MlflowClient parameter names (after self) for the tracking methods.
MLFLOW_CLIENT_SIGNATURES = {
    "create_experiment": ["name", "artifact_location", "tags"],
    "search_experiments": ["view_type", "max_results", "filter_string", "order_by", "page_token"],
    "create_run": ["experiment_id", "start_time", "tags", "run_name"],
    "update_run": ["run_id", "status", "name"],
    "set_terminated": ["run_id", "status", "end_time"],
    "search_runs": [
        "experiment_ids",
        "filter_string",
        "run_view_type",
        "max_results",
        "order_by",
        "page_token",
    ],
    "log_param": ["run_id", "key", "value", "synchronous"],
    "log_metric": [
        "run_id",
        "key",
        "value",
        "timestamp",
        "step",
        "synchronous",
        "dataset_name",
        "dataset_digest",
        "model_id",
    ],
    "set_tag": ["run_id", "key", "value", "synchronous"],
    "log_batch": ["run_id", "metrics", "params", "tags", "synchronous"],
    "get_metric_history": ["run_id", "key"],
    "log_inputs": ["run_id", "datasets", "models"],
    "log_outputs": ["run_id", "models"],
    "create_logged_model": [
        "experiment_id",
        "name",
        "source_run_id",
        "tags",
        "params",
        "model_type",
    ],
    "log_model_params": ["model_id", "params"],
    "finalize_logged_model": ["model_id", "status"],
    "delete_logged_model": ["model_id"],
    "set_logged_model_tags": ["model_id", "tags"],
    "delete_logged_model_tag": ["model_id", "key"],
    "search_logged_models": [
        "experiment_ids",
        "filter_string",
        "datasets",
        "max_results",
        "order_by",
        "page_token",
    ],
}


@pytest.mark.parametrize("name", sorted(MLFLOW_CLIENT_SIGNATURES))
def test_client_signatures_match_mlflow(name: str) -> None:
    # MLflow's parameters, in MLflow's order; mlgrid's additions may only follow as keyword-only
    # parameters (create_run's user_id, update_run's end_time), so every MLflow call still works.
    parameters = inspect.signature(getattr(mlgrid.MlflowClient, name)).parameters.values()
    mlflow_part = [p.name for p in parameters if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    assert mlflow_part[1:] == MLFLOW_CLIENT_SIGNATURES[name]
