"""mlgrid's messages as MLflow's JSON entities, and MLflow's JSON objects as mlgrid's messages.

Written out field by field rather than through protobuf's generic JSON mapping: the two
contracts differ in enum spellings (``RUN_STATUS_FINISHED`` vs ``FINISHED``) and in a few
names, MLflow writes 64-bit integers as JSON numbers, and a plain dict per entity is several
times faster to build than a reflective walk (this runs on every call of the hot paths).
Artifact URIs pass through :class:`.uris.ArtifactUris` so that clients see ``mlflow-artifacts:/``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.registry.v1 import registry_pb2
from mlgrid.api.tracking.v1 import tracking_pb2, tracking_service_pb2

from .uris import ArtifactUris

#: MLflow's RunStatus names by number (mlgrid's numbers are the same).
RUN_STATUS_NAMES = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
RUN_STATUS_VALUES = {name: number for number, name in RUN_STATUS_NAMES.items()}
#: MLflow's ViewType.
VIEW_TYPE_VALUES = {"ACTIVE_ONLY": 1, "DELETED_ONLY": 2, "ALL": 3}
#: MLflow's LoggedModelStatus names by number.
LOGGED_MODEL_STATUS_NAMES = {
    0: "LOGGED_MODEL_STATUS_UNSPECIFIED",
    1: "LOGGED_MODEL_PENDING",
    2: "LOGGED_MODEL_READY",
    3: "LOGGED_MODEL_UPLOAD_FAILED",
}
#: MLflow's ModelVersionStatus names by number.
VERSION_STATUS_NAMES = {1: "PENDING_REGISTRATION", 2: "FAILED_REGISTRATION", 3: "READY"}


def json_float(value: float) -> float | str:
    """A double as protobuf's JSON mapping writes it: NaN and infinities as strings."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


# -- JSON objects -> messages -----------------------------------------------------------------


def tags_in(items: Iterable[dict[str, Any]] | None) -> list[common_pb2.Tag]:
    return [common_pb2.Tag(key=t["key"], value=t.get("value", "")) for t in items or ()]


def metric_in(item: dict[str, Any]) -> tracking_pb2.Metric:
    return tracking_pb2.Metric(
        key=item["key"],
        value=item.get("value", 0.0),
        timestamp=item.get("timestamp", 0),
        step=item.get("step", 0),
        model_id=item.get("model_id", ""),
        dataset_name=item.get("dataset_name", ""),
        dataset_digest=item.get("dataset_digest", ""),
    )


def dataset_inputs_in(items: Iterable[dict[str, Any]] | None) -> list[tracking_pb2.DatasetInput]:
    out = []
    for item in items or ():
        d = item.get("dataset", {})
        out.append(
            tracking_pb2.DatasetInput(
                tags=tags_in(item.get("tags")),
                dataset=tracking_pb2.Dataset(
                    name=d.get("name", ""),
                    digest=d.get("digest", ""),
                    source_type=d.get("source_type", ""),
                    source=d.get("source", ""),
                    schema=d.get("schema", ""),
                    profile=d.get("profile", ""),
                ),
            )
        )
    return out


# -- messages -> JSON objects -----------------------------------------------------------------


def tags_out(tags: Iterable[common_pb2.Tag]) -> list[dict[str, str]]:
    return [{"key": t.key, "value": t.value} for t in tags]


def metrics_out_of_columns(
    key: str, columns: tracking_service_pb2.MetricHistoryColumns
) -> list[dict[str, Any]]:
    """A columnar history chunk as MLflow's metric objects (what metric_out gives per point)."""
    return [
        {"key": key, "value": json_float(v), "timestamp": ts, "step": s}
        for s, ts, v in zip(columns.steps, columns.timestamps, columns.values, strict=True)
    ]


def metric_out(m: tracking_pb2.Metric) -> dict[str, Any]:
    out = {"key": m.key, "value": json_float(m.value), "timestamp": m.timestamp, "step": m.step}
    # MLflow 3's links of a point to a logged model and a dataset, written only when set.
    if m.model_id:
        out["model_id"] = m.model_id
    if m.dataset_name:
        out["dataset_name"] = m.dataset_name
        out["dataset_digest"] = m.dataset_digest
    if m.run_id:
        out["run_id"] = m.run_id
    return out


def dataset_summary_out(s: tracking_pb2.DatasetSummary) -> dict[str, Any]:
    out = {"experiment_id": s.experiment_id, "name": s.name, "digest": s.digest}
    if s.context:  # MLflow leaves the field out for an input without a context tag
        out["context"] = s.context
    return out


def experiment_out(e: tracking_pb2.Experiment, uris: ArtifactUris) -> dict[str, Any]:
    out: dict[str, Any] = {
        "experiment_id": e.experiment_id,
        "name": e.name,
        "artifact_location": uris.to_client(e.artifact_location),
        "lifecycle_stage": e.lifecycle_stage,
        "last_update_time": e.last_update_time,
        "creation_time": e.creation_time,
    }
    if e.tags:
        out["tags"] = tags_out(e.tags)
    return out


def run_info_out(i: tracking_pb2.RunInfo, uris: ArtifactUris) -> dict[str, Any]:
    out: dict[str, Any] = {
        "run_id": i.run_id,
        "run_uuid": i.run_id,
        "run_name": i.run_name,
        "experiment_id": i.experiment_id,
        "user_id": i.user_id,
        "status": RUN_STATUS_NAMES.get(i.status, "RUNNING"),
        "start_time": i.start_time,
        "artifact_uri": uris.to_client(i.artifact_uri),
        "lifecycle_stage": i.lifecycle_stage,
    }
    if i.HasField("end_time"):
        out["end_time"] = i.end_time
    return out


def dataset_input_out(d: tracking_pb2.DatasetInput) -> dict[str, Any]:
    ds = d.dataset
    dataset: dict[str, Any] = {
        "name": ds.name,
        "digest": ds.digest,
        "source_type": ds.source_type,
        "source": ds.source,
    }
    if ds.schema:
        dataset["schema"] = ds.schema
    if ds.profile:
        dataset["profile"] = ds.profile
    return {"tags": tags_out(d.tags), "dataset": dataset}


def run_out(r: tracking_pb2.Run, uris: ArtifactUris) -> dict[str, Any]:
    data = r.data
    return {
        "info": run_info_out(r.info, uris),
        "data": {
            "metrics": [metric_out(m) for m in data.metrics],
            "params": [{"key": p.key, "value": p.value} for p in data.params],
            "tags": tags_out(data.tags),
        },
        "inputs": {
            "dataset_inputs": [dataset_input_out(d) for d in r.inputs.dataset_inputs],
            "model_inputs": [{"model_id": m.model_id} for m in r.inputs.model_inputs],
        },
        "outputs": {
            "model_outputs": [
                {"model_id": m.model_id, "step": m.step} for m in r.outputs.model_outputs
            ]
        },
    }


def model_version_out(v: registry_pb2.ModelVersion, uris: ArtifactUris) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": v.name,
        "version": v.version,
        "creation_timestamp": v.creation_timestamp,
        "last_updated_timestamp": v.last_updated_timestamp,
        "current_stage": v.current_stage,
        "description": v.description,
        "source": uris.to_client(v.source),
        "run_id": v.run_id,
        "status": VERSION_STATUS_NAMES.get(v.status, "READY"),
    }
    if v.user_id:
        out["user_id"] = v.user_id
    if v.status_message:
        out["status_message"] = v.status_message
    if v.run_link:
        out["run_link"] = v.run_link
    if v.tags:
        out["tags"] = tags_out(v.tags)
    if v.aliases:
        out["aliases"] = list(v.aliases)
    if v.model_id:
        # MLflow 3's link to the logged model the version was made from. MLflow's server leaves
        # it out (its entity does not write it yet) and its client does not read it; the field
        # is in MLflow's ModelVersion message, so clients that parse it (the UI) get it.
        out["model_id"] = v.model_id
    return out


def registered_model_out(m: registry_pb2.RegisteredModel, uris: ArtifactUris) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": m.name,
        "creation_timestamp": m.creation_timestamp,
        "last_updated_timestamp": m.last_updated_timestamp,
        "description": m.description,
    }
    if m.latest_versions:
        out["latest_versions"] = [model_version_out(v, uris) for v in m.latest_versions]
    if m.tags:
        out["tags"] = tags_out(m.tags)
    if m.aliases:
        out["aliases"] = [{"alias": a.alias, "version": a.version} for a in m.aliases]
    return out


def logged_model_out(m: tracking_pb2.LoggedModel, uris: ArtifactUris) -> dict[str, Any]:
    i = m.info
    info: dict[str, Any] = {
        "model_id": i.model_id,
        "experiment_id": i.experiment_id,
        "name": i.name,
        "creation_timestamp_ms": i.creation_timestamp_ms,
        "last_updated_timestamp_ms": i.last_updated_timestamp_ms,
        "artifact_uri": uris.to_client(i.artifact_uri),
        "status": LOGGED_MODEL_STATUS_NAMES.get(i.status, "LOGGED_MODEL_STATUS_UNSPECIFIED"),
        "model_type": i.model_type,
        "source_run_id": i.source_run_id,
        "tags": tags_out(i.tags),
        "registrations": [{"name": r.name, "version": r.version} for r in i.registrations],
    }
    if i.creator_id:
        info["creator_id"] = i.creator_id
    if i.status_message:
        info["status_message"] = i.status_message
    return {
        "info": info,
        "data": {
            "params": [{"key": p.key, "value": p.value} for p in m.data.params],
            "metrics": [metric_out(x) for x in m.data.metrics],
        },
    }
