"""One converter per entity between mlgrid's SDK objects and MLflow's.

mlgrid's entities already carry MLflow's names and meanings, so each converter copies fields;
the only change is the artifact location, which MLflow is shown wrapped (see ``uris``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import repeat

from mlflow import entities as mf
from mlflow.entities import model_registry as mf_registry

from mlgrid import entities as mg
from mlgrid.api.tracking.v1.tracking_service_pb2 import MetricHistoryColumns
from mlgrid.registry import entities as mg_registry

from .uris import Gateway, wrap_artifact_uri


def experiment(gateway: Gateway, exp: mg.Experiment) -> mf.Experiment:
    return mf.Experiment(
        experiment_id=exp.experiment_id,
        name=exp.name,
        artifact_location=wrap_artifact_uri(gateway, exp.artifact_location),
        lifecycle_stage=exp.lifecycle_stage,
        tags=[mf.ExperimentTag(k, v) for k, v in exp.tags.items()],
        creation_time=exp.creation_time,
        last_update_time=exp.last_update_time,
    )


def run_info(gateway: Gateway, info: mg.RunInfo) -> mf.RunInfo:
    return mf.RunInfo(
        run_id=info.run_id,
        experiment_id=info.experiment_id,
        user_id=info.user_id,
        status=info.status,
        start_time=info.start_time or 0,
        end_time=info.end_time,
        lifecycle_stage=info.lifecycle_stage,
        artifact_uri=wrap_artifact_uri(gateway, info.artifact_uri),
        run_name=info.run_name,
    )


def metric(point: mg.Metric) -> mf.Metric:
    return mf.Metric(
        point.key,
        point.value,
        point.timestamp,
        point.step,
        model_id=point.model_id,
        dataset_name=point.dataset_name,
        dataset_digest=point.dataset_digest,
        run_id=point.run_id,
    )


def metrics_of_columns(key: str, columns: MetricHistoryColumns) -> Iterator[mf.Metric]:
    """A chunk of a columnar metric history as MLflow metrics, built straight from the columns
    (no mlgrid entity in between: a history can hold millions of points)."""
    steps = columns.steps
    return map(mf.Metric, repeat(key, len(steps)), columns.values, columns.timestamps, steps)


def run(gateway: Gateway, source: mg.Run) -> mf.Run:
    data = source.data
    # RunData keeps only the latest value per key; the SDK kept the points those came from.
    metrics = [metric(m) for m in data.latest_metrics]
    run_data = mf.RunData(
        metrics=metrics,
        params=[mf.Param(k, v) for k, v in data.params.items()],
        tags=[mf.RunTag(k, v) for k, v in data.tags.items()],
    )
    inputs = mf.RunInputs(
        dataset_inputs=[dataset_input(d) for d in source.inputs.dataset_inputs],
        model_inputs=[mf.LoggedModelInput(m.model_id) for m in source.inputs.model_inputs],
    )
    outputs = mf.RunOutputs(
        [mf.LoggedModelOutput(o.model_id, o.step) for o in source.outputs.model_outputs]
    )
    return mf.Run(run_info(gateway, source.info), run_data, inputs, outputs)


def dataset_input(source: mg.DatasetInput) -> mf.DatasetInput:
    ds = source.dataset
    return mf.DatasetInput(
        mf.Dataset(ds.name, ds.digest, ds.source_type, ds.source, ds.schema, ds.profile),
        [mf.InputTag(t.key, t.value) for t in source.tags],
    )


def to_dataset_input(source: mf.DatasetInput) -> mg.DatasetInput:
    ds = source.dataset
    return mg.DatasetInput(
        mg.Dataset(ds.name, ds.digest, ds.source_type, ds.source, ds.schema, ds.profile),
        [mg.InputTag(t.key, t.value) for t in source.tags],
    )


def to_metrics(metrics: Iterable[mf.Metric]) -> list[mg.Metric]:
    return [
        mg.Metric(
            m.key,
            m.value,
            m.timestamp,
            m.step or 0,
            model_id=m.model_id,
            dataset_name=m.dataset_name,
            dataset_digest=m.dataset_digest,
        )
        for m in metrics
    ]


# -- logged models (MLflow 3) ----------------------------------------------------------------


def logged_model(gateway: Gateway, model: mg.LoggedModel) -> mf.LoggedModel:
    return mf.LoggedModel(
        experiment_id=model.experiment_id,
        model_id=model.model_id,
        name=model.name,
        artifact_location=wrap_artifact_uri(gateway, model.artifact_location),
        creation_timestamp=model.creation_timestamp,
        last_updated_timestamp=model.last_updated_timestamp,
        model_type=model.model_type,
        source_run_id=model.source_run_id,
        status=mf.LoggedModelStatus(model.status.value),
        status_message=model.status_message,
        tags=dict(model.tags),
        params=dict(model.params),
        metrics=[metric(m) for m in model.metrics or []] or None,
    )


def to_params(params: Iterable[mf.Param]) -> list[mg.Param]:
    return [mg.Param(p.key, str(p.value)) for p in params]


def to_tags(tags: Iterable[mf.RunTag]) -> list[mg.RunTag]:
    return [mg.RunTag(t.key, str(t.value)) for t in tags]


# -- registry --------------------------------------------------------------------------------


def model_version(gateway: Gateway, version: mg_registry.ModelVersion) -> mf_registry.ModelVersion:
    return mf_registry.ModelVersion(
        name=version.name,
        version=version.version,
        creation_timestamp=version.creation_timestamp,
        last_updated_timestamp=version.last_updated_timestamp,
        description=version.description,
        user_id=version.user_id,
        current_stage=version.current_stage,
        source=wrap_artifact_uri(gateway, version.source),
        run_id=version.run_id or None,
        status=version.status,
        status_message=version.status_message or None,
        tags=[mf_registry.ModelVersionTag(k, v) for k, v in version.tags.items()],
        run_link=version.run_link or None,
        aliases=list(version.aliases),
        model_id=version.model_id,
    )


def registered_model(
    gateway: Gateway, model: mg_registry.RegisteredModel
) -> mf_registry.RegisteredModel:
    return mf_registry.RegisteredModel(
        name=model.name,
        creation_timestamp=model.creation_timestamp,
        last_updated_timestamp=model.last_updated_timestamp,
        description=model.description,
        latest_versions=[model_version(gateway, v) for v in model.latest_versions],
        tags=[mf_registry.RegisteredModelTag(k, v) for k, v in model.tags.items()],
        aliases=[mf_registry.RegisteredModelAlias(a, v) for a, v in model.aliases.items()],
    )
