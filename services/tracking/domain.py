"""Tracking domain logic: validation, defaults and invariants, over any AbstractTrackingStore.

Everything that can be checked without the database is checked here, before the store is called,
so a rejected request never writes anything. Stateful invariants (write-once params, deleted
runs, unique names) are the store's, enforced inside its transaction.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence

from mlgrid import limits
from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.api.tracking.v1 import tracking_service_pb2 as pb
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist
from mlgrid.request_limits import check_id_count
from mlgrid.store.search_filter import (
    check_experiment_filter,
    check_run_filter,
    parse_experiment_order_by,
    parse_run_order_by,
)
from mlgrid.store.tracking_store import (
    AbstractTrackingStore,
    HistoryColumns,
    HistoryPoint,
    MetricBatch,
)
from mlgrid_services.common import validation as v
from mlgrid_services.common.location_policy import DeploymentPolicy

from .logged_models import LoggedModelsDomain, check_metric_links
from .names import generate_run_name
from .prefetch import prefetched

RUN_NAME_TAG = "mlflow.runName"
DEFAULT_EXPERIMENT_ID = "0"
HISTORY_CHUNK = 10_000
#: Points per columnar history chunk: 24 bytes each, so 1.5 MiB a message; big enough that the
#: per-chunk costs (a query, a message) vanish, far below the message size limit.
HISTORY_COLUMNS_CHUNK = 65_536


def _now_ms() -> int:
    return int(time.time() * 1000)


def _view_type(view_type: int) -> int:
    if view_type not in (0, 1, 2, 3):
        raise InvalidParameterValue(
            f"Invalid view_type {view_type}: expected ACTIVE_ONLY (1), DELETED_ONLY (2) or ALL (3)"
        )
    return view_type or common_pb2.VIEW_TYPE_ACTIVE_ONLY


def _unpacked(columns: pb.MetricColumns) -> tuple[list[str], list[int], list[int], list[float]]:
    """The points of ``columns`` as four equally long lists; INVALID_PARAMETER_VALUE naming the
    field when the columns do not line up."""
    count = len(columns.values)
    lengths = {"timestamps": len(columns.timestamps), "steps": len(columns.steps)}
    for name, length in lengths.items():
        if length != count:
            raise InvalidParameterValue(
                f"metric_columns.{name} has {length} entries but metric_columns.values has "
                f"{count}: every point needs a value, a timestamp and a step"
            )
    names = list(columns.keys)
    if columns.key_index:
        index = list(columns.key_index)
        if len(index) != count:
            raise InvalidParameterValue(
                f"metric_columns.key_index has {len(index)} entries for {count} points"
            )
        if max(index) >= len(names):
            raise InvalidParameterValue(
                f"metric_columns.key_index {max(index)} is out of range: metric_columns.keys "
                f"has {len(names)} entries"
            )
        keys = [names[i] for i in index]
    elif len(names) == 1:
        keys = names * count
    else:
        raise InvalidParameterValue(
            "metric_columns.key_index may only be empty when metric_columns.keys has exactly "
            f"one entry (it has {len(names)})"
        )
    return keys, list(columns.steps), list(columns.timestamps), list(columns.values)


def check_metrics(
    metrics: Sequence[tracking_pb2.Metric], columns: pb.MetricColumns | None = None
) -> MetricBatch:
    """Validates points (messages, then ``columns``): keys (each distinct key once),
    timestamps; clamps ±inf (in the messages too). Returns them with their fields read out
    once, as columns, for the store."""
    # One pass reads the fields (the costly part); the checks then run on the columns in C.
    rows = [(m.key, m.step, m.timestamp, m.value) for m in metrics]
    extra = _unpacked(columns) if columns is not None and columns.values else None
    if not rows and extra is None:
        return MetricBatch(metrics, (), (), (), ())
    keys: Sequence[str]
    steps: Sequence[int]
    timestamps: Sequence[int]
    values: Sequence[float]
    if rows:
        keys, steps, timestamps, values = zip(*rows, strict=True)
    else:
        keys, steps, timestamps, values = (), (), (), ()
    if extra is not None:
        keys, steps, timestamps, values = (
            [*keys, *extra[0]],
            [*steps, *extra[1]],
            [*timestamps, *extra[2]],
            [*values, *extra[3]],
        )
    for key in set(keys):
        v.validate_key(key, "metric key")
    if min(timestamps) < 0:
        index = next(i for i, timestamp in enumerate(timestamps) if timestamp < 0)
        raise InvalidParameterValue(
            f"Invalid timestamp {timestamps[index]} of metric {keys[index]!r}: must be >= 0 "
            "(milliseconds)"
        )
    total = sum(values)
    if math.isinf(total) or math.isnan(total):  # some point is ±inf or NaN (or the sum overflowed)
        clamped = list(values)
        for index, value in enumerate(values):
            if math.isinf(value):
                bound = v.MAX_DOUBLE if value > 0 else -v.MAX_DOUBLE
                clamped[index] = bound
                if index < len(rows):
                    metrics[index].value = bound
        values = clamped
    # With columns the messages are built only if a store iterates them (see MetricBatch).
    return MetricBatch(metrics if extra is None else None, keys, steps, timestamps, values)


def check_metric(metric: tracking_pb2.Metric) -> None:
    """check_metrics for one point, without building columns."""
    v.validate_key(metric.key, "metric key")
    if metric.timestamp < 0:
        raise InvalidParameterValue(
            f"Invalid timestamp {metric.timestamp} of metric {metric.key!r}: must be >= 0 "
            "(milliseconds)"
        )
    if math.isinf(metric.value):
        metric.value = v.MAX_DOUBLE if metric.value > 0 else -v.MAX_DOUBLE


class TrackingDomain(LoggedModelsDomain):
    """The tracking operations with MLflow's semantics, over ``store``."""

    def __init__(
        self, store: AbstractTrackingStore, location_policy: DeploymentPolicy | None = None
    ) -> None:
        self.store = store
        #: Which artifact locations experiments may name (None: any). The store's own default
        #: root is always allowed (a plugin store keeps artifacts under its own scheme).
        self.location_policy = location_policy

    # ------------------------------------------------------------ experiments

    def create_experiment(
        self, name: str, artifact_location: str, tags: Sequence[common_pb2.Tag]
    ) -> str:
        v.validate_experiment_name(name)
        if artifact_location:
            v.validate_artifact_location(artifact_location)
            if "\x00" in artifact_location:
                raise InvalidParameterValue(
                    "Invalid artifact_location: it must not contain NUL characters"
                )
            if self.location_policy is not None:
                # Checked now, not at the first upload: the error names the setting to change.
                own_root = getattr(self.store, "default_artifact_root", "")
                policy = self.location_policy.current().with_root(own_root)
                policy.check(artifact_location, "artifact_location")
        for tag in tags:
            v.validate_experiment_tag(tag.key, tag.value)
        return self.store.create_experiment(name, artifact_location or None, tags)

    def get_experiment(self, experiment_id: str) -> tracking_pb2.Experiment:
        v.validate_experiment_id(experiment_id)
        return self.store.get_experiment(experiment_id)

    def get_experiment_by_name(self, name: str) -> tracking_pb2.Experiment:
        if not name:
            raise InvalidParameterValue("Invalid experiment_name '': it must not be empty")
        found = self.store.get_experiment_by_name(name)
        if found is None:
            raise ResourceDoesNotExist(f"Experiment {name!r} does not exist")
        return found

    def search_experiments(
        self,
        view_type: int,
        max_results: int,
        filter_string: str,
        order_by: Sequence[str],
        page_token: str,
    ) -> tuple[list[tracking_pb2.Experiment], str]:
        size = v.validate_max_results(max_results)
        check_experiment_filter(filter_string)
        parse_experiment_order_by(list(order_by))
        return self.store.search_experiments(
            _view_type(view_type), size, filter_string, order_by, page_token
        )

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        v.validate_experiment_id(experiment_id)
        v.validate_experiment_name(new_name)
        self.store.rename_experiment(experiment_id, new_name)

    def delete_experiment(self, experiment_id: str) -> None:
        v.validate_experiment_id(experiment_id)
        self.store.delete_experiment(experiment_id)

    def restore_experiment(self, experiment_id: str) -> None:
        v.validate_experiment_id(experiment_id)
        self.store.restore_experiment(experiment_id)

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        v.validate_experiment_id(experiment_id)
        v.validate_experiment_tag(key, value)
        self.store.set_experiment_tag(experiment_id, common_pb2.Tag(key=key, value=value))

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        v.validate_experiment_id(experiment_id)
        v.validate_key(key, "experiment tag key")
        self.store.delete_experiment_tag(experiment_id, key)

    # ------------------------------------------------------------------- runs

    def create_run(
        self,
        experiment_id: str,
        user_id: str,
        start_time: int,
        tags: Sequence[common_pb2.Tag],
        run_name: str,
    ) -> tracking_pb2.Run:
        experiment_id = experiment_id or DEFAULT_EXPERIMENT_ID
        v.validate_experiment_id(experiment_id)
        v.validate_length(user_id, limits.MAX_USER_ID_LENGTH, "user_id")
        if start_time < 0:
            raise InvalidParameterValue(f"Invalid start_time {start_time}: must be >= 0")
        for tag in tags:
            v.validate_run_tag(tag.key, tag.value)
        tagged_name = next((t.value for t in reversed(tags) if t.key == RUN_NAME_TAG), "")
        if run_name and tagged_name and run_name != tagged_name:
            raise InvalidParameterValue(
                f"Both run_name {run_name!r} and tag {RUN_NAME_TAG}={tagged_name!r} were given "
                "with different values; give one, or the same value in both"
            )
        name = run_name or tagged_name or generate_run_name()
        v.validate_length(name, limits.MAX_RUN_NAME_LENGTH, "run_name")
        final_tags = [t for t in tags if t.key != RUN_NAME_TAG]
        final_tags.append(common_pb2.Tag(key=RUN_NAME_TAG, value=name))
        return self.store.create_run(
            experiment_id, user_id, start_time or _now_ms(), name, final_tags
        )

    def get_run(self, run_id: str) -> tracking_pb2.Run:
        v.validate_run_id(run_id)
        return self.store.get_run(run_id)

    def update_run(
        self, run_id: str, status: int, end_time: int | None, run_name: str
    ) -> tracking_pb2.RunInfo:
        v.validate_run_id(run_id)
        if status not in (0, 1, 2, 3, 4, 5):
            raise InvalidParameterValue(
                f"Invalid status {status}: expected RUNNING (1), SCHEDULED (2), FINISHED (3), "
                "FAILED (4) or KILLED (5)"
            )
        if end_time is not None and end_time < 0:
            raise InvalidParameterValue(f"Invalid end_time {end_time}: must be >= 0")
        if run_name:
            v.validate_length(run_name, limits.MAX_RUN_NAME_LENGTH, "run_name")
        return self.store.update_run(run_id, status or None, end_time, run_name or None)

    def delete_run(self, run_id: str) -> None:
        v.validate_run_id(run_id)
        self.store.delete_run(run_id)

    def restore_run(self, run_id: str) -> None:
        v.validate_run_id(run_id)
        self.store.restore_run(run_id)

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str,
        view_type: int,
        max_results: int,
        order_by: Sequence[str],
        page_token: str,
    ) -> tuple[list[tracking_pb2.Run], str]:
        check_id_count(experiment_ids, "experiment_ids")
        for experiment_id in experiment_ids:
            v.validate_experiment_id(experiment_id, "experiment_ids")
        size = v.validate_max_results(max_results)
        check_run_filter(filter_string)
        parse_run_order_by(list(order_by))
        return self.store.search_runs(
            list(experiment_ids),
            filter_string,
            _view_type(view_type),
            size,
            order_by,
            page_token,
        )

    # --------------------------------------------------------------- run data

    def log_param(self, run_id: str, key: str, value: str) -> None:
        v.validate_run_id(run_id)
        v.validate_param(key, value)
        self.store.log_param(run_id, tracking_pb2.Param(key=key, value=value))

    def log_metric(self, run_id: str, metric: tracking_pb2.Metric) -> None:
        v.validate_run_id(run_id)
        check_metric(metric)
        if metric.model_id:
            self.store.log_logged_model_metrics(run_id, check_metric_links([metric]))
        self.store.log_metric(run_id, metric)

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        v.validate_run_id(run_id)
        v.validate_run_tag(key, value)
        if key == RUN_NAME_TAG:
            v.validate_length(value, limits.MAX_RUN_NAME_LENGTH, f"value of tag {RUN_NAME_TAG}")
        self.store.set_tag(run_id, common_pb2.Tag(key=key, value=value))

    def delete_tag(self, run_id: str, key: str) -> None:
        v.validate_run_id(run_id)
        v.validate_key(key, "tag key")
        self.store.delete_tag(run_id, key)

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[tracking_pb2.Metric],
        params: Sequence[tracking_pb2.Param],
        tags: Sequence[common_pb2.Tag],
        metric_columns: pb.MetricColumns | None = None,
    ) -> None:
        v.validate_run_id(run_id)
        points = len(metrics) + (len(metric_columns.values) if metric_columns is not None else 0)
        v.validate_batch_sizes(points, len(params), len(tags))
        seen: set[str] = set()
        for p in params:
            v.validate_param(p.key, p.value)
            if p.key in seen:
                raise InvalidParameterValue(
                    f"Invalid batch: param key {p.key!r} appears more than once; each param key "
                    "may be logged once per batch"
                )
            seen.add(p.key)
        for tag in tags:
            v.validate_run_tag(tag.key, tag.value)
            if tag.key == RUN_NAME_TAG:
                v.validate_length(
                    tag.value, limits.MAX_RUN_NAME_LENGTH, f"value of tag {RUN_NAME_TAG}"
                )
        batch = check_metrics(metrics, metric_columns)
        linked = check_metric_links(metrics)
        if linked:
            self.store.log_logged_model_metrics(run_id, linked)
        self.store.log_batch(run_id, batch, params, tags)

    def ingest_metrics(self, run_id: str, metrics: Sequence[tracking_pb2.Metric]) -> int:
        """One message of a streaming ingest: any number of points, written in bulk."""
        v.validate_run_id(run_id)
        batch = check_metrics(metrics)
        if metrics:
            self.store.log_batch(run_id, batch, (), ())
        return len(metrics)

    def log_inputs(
        self,
        run_id: str,
        inputs: Sequence[tracking_pb2.DatasetInput],
        models: Sequence[tracking_pb2.ModelInput] = (),
    ) -> None:
        v.validate_run_id(run_id)
        for item in inputs:
            if not item.HasField("dataset") or not item.dataset.name:
                raise InvalidParameterValue("Invalid dataset input: dataset.name must be set")
            for field, limit in limits.MAX_DATASET_FIELD_LENGTHS:
                v.validate_length(getattr(item.dataset, field), limit, f"dataset.{field}")
            for tag in item.tags:
                v.validate_length(tag.key, limits.MAX_INPUT_TAG_KEY_LENGTH, "input tag key")
                v.validate_length(
                    tag.value, limits.MAX_INPUT_TAG_VALUE_LENGTH, f"value of input tag {tag.key!r}"
                )
        self.log_model_inputs(run_id, models)
        if inputs or not models:
            self.store.log_inputs(run_id, inputs)

    def search_datasets(self, experiment_ids: Sequence[str]) -> list[tracking_pb2.DatasetSummary]:
        """The datasets the runs of 1 to 20 experiments used (MLflow's limits and messages)."""
        if not experiment_ids:
            raise InvalidParameterValue(
                "SearchDatasets request must specify at least one experiment_id."
            )
        if len(experiment_ids) > limits.MAX_DATASET_SEARCH_EXPERIMENTS:
            raise InvalidParameterValue(
                "SearchDatasets request cannot specify more than "
                f"{limits.MAX_DATASET_SEARCH_EXPERIMENTS} experiment_ids. Received "
                f"{len(experiment_ids)} experiment_ids."
            )
        for experiment_id in experiment_ids:
            v.validate_experiment_id(experiment_id, "experiment_ids")
        return self.store.search_datasets(list(experiment_ids), limits.MAX_DATASET_SUMMARIES)

    # ---------------------------------------------------------------- history

    def get_metric_history(
        self, run_id: str, key: str, max_results: int, page_token: str
    ) -> tuple[list[tracking_pb2.Metric], str]:
        v.validate_run_id(run_id)
        v.validate_key(key, "metric_key")
        if max_results < 0:
            raise InvalidParameterValue(
                f"Invalid max_results {max_results}: must be >= 0 (0 means all points)"
            )
        return self.store.get_metric_history(run_id, key, max_results, page_token)

    def iter_metric_history(self, run_id: str, key: str) -> Iterator[Sequence[HistoryPoint]]:
        v.validate_run_id(run_id)
        v.validate_key(key, "metric_key")
        return self.store.iter_metric_history(run_id, key, HISTORY_CHUNK)

    def iter_metric_history_columns(self, run_id: str, key: str) -> Iterator[HistoryColumns]:
        v.validate_run_id(run_id)
        v.validate_key(key, "metric_key")
        # The next chunk is read from the database while this one is sent (prefetch.py).
        return prefetched(
            self.store.iter_metric_history_columns(run_id, key, HISTORY_COLUMNS_CHUNK)
        )

    def get_metric_history_bulk_interval(
        self,
        run_ids: Sequence[str],
        key: str,
        start_step: int | None,
        end_step: int | None,
        max_results: int,
    ) -> list[tracking_pb2.MetricWithRunId]:
        if not run_ids:
            raise InvalidParameterValue("Invalid run_ids: at least one run id is required")
        if len(run_ids) > limits.MAX_BULK_INTERVAL_RUNS:
            raise InvalidParameterValue(
                f"Invalid run_ids: {len(run_ids)} given, at most {limits.MAX_BULK_INTERVAL_RUNS} allowed"
            )
        for run_id in run_ids:
            v.validate_run_id(run_id, "run_ids")
        v.validate_key(key, "metric_key")
        if max_results < 0 or max_results > limits.MAX_BULK_INTERVAL_POINTS:
            raise InvalidParameterValue(
                f"Invalid max_results {max_results}: must be between 1 and "
                f"{limits.MAX_BULK_INTERVAL_POINTS} (0 means {limits.MAX_BULK_INTERVAL_POINTS})"
            )
        if start_step is not None and end_step is not None and start_step > end_step:
            raise InvalidParameterValue(
                f"Invalid step range: start_step {start_step} is greater than end_step {end_step}"
            )
        return self.store.get_metric_history_bulk_interval(
            run_ids, key, start_step, end_step, max_results or limits.MAX_BULK_INTERVAL_POINTS
        )
