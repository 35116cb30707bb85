"""A tracking store in plain Python dictionaries: the reference the contract suite checks.

It exists to pin down what :class:`~mlgrid.store.tracking_store.AbstractTrackingStore` promises
independently of SQL: the contract suite (:mod:`mlgrid.testing.tracking_store_contract`) runs
over it and over every built-in store, so a promise that only SQL happened to keep shows up as a
failure here. It is also the smallest complete example of a store for plugin authors. One lock
serialises every call; nothing is persisted; speed is not a goal.
"""

from __future__ import annotations

import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from mlgrid.store.paging import decode_page_token, encode_page_token
from mlgrid.store.search_filter import (
    RUN_ATTRIBUTES,
    BoolOp,
    Comparison,
    FilterNode,
    OrderBy,
    check_experiment_filter,
    check_run_filter,
    parse_experiment_order_by,
    parse_run_order_by,
)
from mlgrid.store.tracking_store import AbstractTrackingStore, HistoryPoint

__all__ = ["MemoryTrackingStore"]

T = TypeVar("T")

ACTIVE, DELETED = "active", "deleted"
RUN_NAME_TAG = "mlflow.runName"
DATASET_CONTEXT_TAG = "mlflow.data.context"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _status_name(status: int) -> str:
    return tracking_pb2.RunStatus.Name(status).removeprefix("RUN_STATUS_")  # type: ignore[arg-type]


@dataclass
class _Run:
    info: tracking_pb2.RunInfo
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    #: Every point per key, as (step, timestamp, value), in logging order.
    history: dict[str, list[HistoryPoint]] = field(default_factory=dict)
    inputs: dict[tuple[str, str], tracking_pb2.DatasetInput] = field(default_factory=dict)
    #: Deleted together with its experiment (restored with it), not on its own.
    deleted_with_experiment: bool = False

    def latest(self, key: str) -> HistoryPoint | None:
        points = self.history.get(key)
        if not points:
            return None
        # The greatest (step, timestamp, value); NaN compares as the largest value, as stored.
        return max(points, key=lambda p: (p[0], p[1], math.inf if math.isnan(p[2]) else p[2]))

    def to_proto(self, with_inputs: bool) -> tracking_pb2.Run:
        run = tracking_pb2.Run(info=self.info)
        for key in sorted(self.history):
            step, timestamp, value = self.latest(key)  # type: ignore[misc]
            run.data.metrics.add(key=key, value=value, timestamp=timestamp, step=step)
        run.data.params.extend(
            tracking_pb2.Param(key=k, value=v) for k, v in sorted(self.params.items())
        )
        run.data.tags.extend(common_pb2.Tag(key=k, value=v) for k, v in sorted(self.tags.items()))
        if with_inputs:
            run.inputs.dataset_inputs.extend(self.inputs.values())
        return run


def _like(pattern: str, value: str, ignore_case: bool) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return (
        re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)
        is not None
    )


def _compare(op: str, have: object, want: object) -> bool:
    """One comparison of a present value; SQL's meaning (NaN matches no order comparison)."""
    if op in ("IN", "NOT IN"):
        inside = have in want  # type: ignore[operator]
        return inside if op == "IN" else not inside
    if op == "LIKE":
        return _like(str(want), str(have), False)
    if op == "ILIKE":
        return _like(str(want), str(have), True)
    if isinstance(have, float) and math.isnan(have):
        return op == "!="
    if op == "=":
        return have == want
    if op in ("!=", "<>"):
        return have != want
    operations: dict[str, Callable[[object, object], bool]] = {
        ">": lambda a, b: a > b,  # type: ignore[operator]
        ">=": lambda a, b: a >= b,  # type: ignore[operator]
        "<": lambda a, b: a < b,  # type: ignore[operator]
        "<=": lambda a, b: a <= b,  # type: ignore[operator]
    }
    return operations[op](have, want)


def _matches(node: FilterNode | None, lookup: Callable[[Comparison], list[object]]) -> bool:
    """Whether an entity matches the filter tree; ``lookup`` gives a comparison's values (none
    when the entity lacks it, several for datasets)."""
    if node is None:
        return True
    if isinstance(node, BoolOp):
        results = (_matches(operand, lookup) for operand in node.operands)
        return all(results) if node.op == "AND" else any(results)
    values = lookup(node)
    if node.op == "IS NULL":
        return not values
    if node.op == "IS NOT NULL":
        return bool(values)
    return any(_compare(node.op, value, node.value) for value in values)


def _sorted(
    items: list[T],
    order: Sequence[OrderBy],
    key_of: Callable[[T, OrderBy], Any],
    tie: Callable[[T], Any],
) -> list[T]:
    """Stable multi-key sort: missing values last in either direction, then ``tie``."""
    result = sorted(items, key=tie)
    for clause in reversed(order):
        present = [i for i in result if key_of(i, clause) is not None]
        missing = [i for i in result if key_of(i, clause) is None]
        present.sort(key=lambda i: key_of(i, clause), reverse=not clause.ascending)
        result = present + missing
    return result


class MemoryTrackingStore(AbstractTrackingStore):
    """Experiments and runs in dictionaries; the Default experiment "0" exists from the start."""

    def __init__(self, default_artifact_root: str = "memory://artifacts") -> None:
        self._root = default_artifact_root.rstrip("/")
        self._lock = threading.RLock()
        self._experiments: dict[str, tracking_pb2.Experiment] = {}
        self._runs: dict[str, _Run] = {}
        self._next_id = 0
        self.create_experiment("Default", None, ())

    # ----------------------------------------------------------------- helpers

    def _experiment(self, experiment_id: str) -> tracking_pb2.Experiment:
        found = self._experiments.get(experiment_id)
        if found is None:
            raise ResourceDoesNotExist(f"No experiment with id {experiment_id!r}")
        return found

    def _active_experiment(self, experiment_id: str) -> tracking_pb2.Experiment:
        experiment = self._experiment(experiment_id)
        if experiment.lifecycle_stage != ACTIVE:
            raise InvalidParameterValue(f"experiment {experiment_id} is deleted")
        return experiment

    def _run(self, run_id: str) -> _Run:
        found = self._runs.get(run_id)
        if found is None:
            raise ResourceDoesNotExist(f"No run with id {run_id!r}")
        return found

    def _writable(self, run_id: str) -> _Run:
        run = self._run(run_id)
        if run.info.lifecycle_stage != ACTIVE:
            raise InvalidParameterValue(f"run {run_id} is deleted: it cannot be changed")
        return run

    def _name_taken(self, name: str, other_than: str | None = None) -> bool:
        return any(
            e.name == name and e.experiment_id != other_than for e in self._experiments.values()
        )

    # ----------------------------------------------------------------- experiments

    def create_experiment(
        self, name: str, artifact_location: str | None, tags: Sequence[common_pb2.Tag]
    ) -> str:
        with self._lock:
            if self._name_taken(name):
                raise ResourceAlreadyExists(f"Experiment {name!r} already exists")
            experiment_id = str(self._next_id)
            self._next_id += 1
            now = _now_ms()
            self._experiments[experiment_id] = tracking_pb2.Experiment(
                experiment_id=experiment_id,
                name=name,
                artifact_location=artifact_location or f"{self._root}/{experiment_id}",
                lifecycle_stage=ACTIVE,
                creation_time=now,
                last_update_time=now,
                tags=list({t.key: t for t in tags}.values()),
            )
            return experiment_id

    def get_experiment(self, experiment_id: str) -> tracking_pb2.Experiment:
        with self._lock:
            return tracking_pb2.Experiment.FromString(
                self._experiment(experiment_id).SerializeToString()
            )

    def get_experiment_by_name(self, name: str) -> tracking_pb2.Experiment | None:
        with self._lock:
            for experiment in self._experiments.values():
                if experiment.name == name:
                    return self.get_experiment(experiment.experiment_id)
            return None

    def search_experiments(
        self,
        view_type: int,
        max_results: int,
        filter_string: str,
        order_by: Sequence[str],
        page_token: str,
    ) -> tuple[list[tracking_pb2.Experiment], str]:
        tree = check_experiment_filter(filter_string)
        order = parse_experiment_order_by(list(order_by))
        offset = decode_page_token(page_token, "experiments")
        stages = _stages(view_type)

        def lookup(comp: Comparison, experiment: tracking_pb2.Experiment) -> list[object]:
            if comp.kind == "tag":
                return [t.value for t in experiment.tags if t.key == comp.key]
            value = getattr(experiment, comp.key)
            return [float(value) if comp.key.endswith("_time") else value]

        def key_of(experiment: tracking_pb2.Experiment, clause: OrderBy) -> object:
            value = getattr(experiment, clause.key)
            return int(value) if clause.key == "experiment_id" else value

        with self._lock:
            found = [
                e
                for e in self._experiments.values()
                if e.lifecycle_stage in stages and _matches(tree, partial(lookup, experiment=e))
            ]
            ordered = _sorted(
                found,  # type: ignore[arg-type]
                order or [OrderBy("attribute", "creation_time", False)],
                key_of,
                lambda e: (-e.creation_time, int(e.experiment_id)),  # type: ignore[attr-defined]
            )
            page = [
                self.get_experiment(e.experiment_id) for e in ordered[offset : offset + max_results]
            ]  # type: ignore[attr-defined]
        more = offset + max_results < len(ordered)
        return page, encode_page_token(offset + max_results, "experiments") if more else ""

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        with self._lock:
            experiment = self._active_experiment(experiment_id)
            if self._name_taken(new_name, other_than=experiment_id):
                raise ResourceAlreadyExists(f"Experiment {new_name!r} already exists")
            experiment.name = new_name
            experiment.last_update_time = _now_ms()

    def delete_experiment(self, experiment_id: str) -> None:
        with self._lock:
            if experiment_id == "0":
                raise InvalidParameterValue("the Default experiment (id 0) cannot be deleted")
            experiment = self._active_experiment(experiment_id)
            experiment.lifecycle_stage = DELETED
            experiment.last_update_time = _now_ms()
            for run in self._runs.values():
                if run.info.experiment_id == experiment_id and run.info.lifecycle_stage == ACTIVE:
                    run.info.lifecycle_stage = DELETED
                    run.deleted_with_experiment = True

    def restore_experiment(self, experiment_id: str) -> None:
        with self._lock:
            experiment = self._experiment(experiment_id)
            if experiment.lifecycle_stage == ACTIVE:
                raise InvalidParameterValue(f"experiment {experiment_id} is not deleted")
            experiment.lifecycle_stage = ACTIVE
            experiment.last_update_time = _now_ms()
            for run in self._runs.values():
                if run.info.experiment_id == experiment_id and run.deleted_with_experiment:
                    run.info.lifecycle_stage = ACTIVE
                    run.deleted_with_experiment = False

    def set_experiment_tag(self, experiment_id: str, tag: common_pb2.Tag) -> None:
        with self._lock:
            experiment = self._active_experiment(experiment_id)
            kept = [t for t in experiment.tags if t.key != tag.key]
            del experiment.tags[:]
            experiment.tags.extend([*kept, tag])

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        with self._lock:
            experiment = self._active_experiment(experiment_id)
            kept = [t for t in experiment.tags if t.key != key]
            if len(kept) == len(experiment.tags):
                raise ResourceDoesNotExist(f"No tag {key!r} on experiment {experiment_id}")
            del experiment.tags[:]
            experiment.tags.extend(kept)

    # ----------------------------------------------------------------------- runs

    def create_run(
        self,
        experiment_id: str,
        user_id: str,
        start_time: int,
        run_name: str,
        tags: Sequence[common_pb2.Tag],
    ) -> tracking_pb2.Run:
        with self._lock:
            experiment = self._active_experiment(experiment_id)
            run_id = uuid.uuid4().hex
            info = tracking_pb2.RunInfo(
                run_id=run_id,
                run_name=run_name,
                experiment_id=experiment_id,
                user_id=user_id,
                status=tracking_pb2.RUN_STATUS_RUNNING,
                start_time=start_time,
                artifact_uri=f"{experiment.artifact_location}/{run_id}/artifacts",
                lifecycle_stage=ACTIVE,
            )
            run = self._runs[run_id] = _Run(info, tags={t.key: t.value for t in tags})
            return run.to_proto(with_inputs=True)

    def get_run(self, run_id: str) -> tracking_pb2.Run:
        with self._lock:
            return self._run(run_id).to_proto(with_inputs=True)

    def update_run(
        self, run_id: str, status: int | None, end_time: int | None, run_name: str | None
    ) -> tracking_pb2.RunInfo:
        with self._lock:
            run = self._writable(run_id)
            if status is not None:
                run.info.status = status  # type: ignore[assignment]
            if end_time is not None:
                run.info.end_time = end_time
            if run_name is not None:
                run.info.run_name = run_name
                run.tags[RUN_NAME_TAG] = run_name
            return tracking_pb2.RunInfo.FromString(run.info.SerializeToString())

    def delete_run(self, run_id: str) -> None:
        with self._lock:
            run = self._run(run_id)
            run.info.lifecycle_stage = DELETED
            run.deleted_with_experiment = False

    def restore_run(self, run_id: str) -> None:
        with self._lock:
            run = self._run(run_id)
            self._active_experiment(run.info.experiment_id)
            run.info.lifecycle_stage = ACTIVE

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str,
        view_type: int,
        max_results: int,
        order_by: Sequence[str],
        page_token: str,
    ) -> tuple[list[tracking_pb2.Run], str]:
        tree = check_run_filter(filter_string)
        order = parse_run_order_by(list(order_by))
        offset = decode_page_token(page_token, "runs")
        stages = _stages(view_type)
        with self._lock:
            found = [
                r
                for r in self._runs.values()
                if r.info.experiment_id in experiment_ids
                and r.info.lifecycle_stage in stages
                and _matches(tree, partial(_run_values, r))
            ]
            ordered = _sorted(
                found, order, _run_sort_value, lambda r: (-r.info.start_time, r.info.run_id)
            )
            window = ordered[offset : offset + max_results]
            page = [r.to_proto(with_inputs=False) for r in window]
        more = offset + max_results < len(ordered)
        return page, encode_page_token(offset + max_results, "runs") if more else ""

    # ------------------------------------------------------------------ run data

    def _put_param(self, run: _Run, param: tracking_pb2.Param) -> None:
        stored = run.params.get(param.key)
        if stored is not None and stored != param.value:
            raise InvalidParameterValue(
                f"param {param.key!r} of run {run.info.run_id} is already {stored!r}; params "
                f"are write-once (got {param.value!r})"
            )

    def log_param(self, run_id: str, param: tracking_pb2.Param) -> None:
        with self._lock:
            run = self._writable(run_id)
            self._put_param(run, param)
            run.params[param.key] = param.value

    def log_metric(self, run_id: str, metric: tracking_pb2.Metric) -> None:
        self.log_batch(run_id, [metric], (), ())

    def set_tag(self, run_id: str, tag: common_pb2.Tag) -> None:
        self.log_batch(run_id, (), (), [tag])

    def delete_tag(self, run_id: str, key: str) -> None:
        with self._lock:
            run = self._writable(run_id)
            if run.tags.pop(key, None) is None:
                raise ResourceDoesNotExist(f"No tag {key!r} on run {run_id}")

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[tracking_pb2.Metric],
        params: Sequence[tracking_pb2.Param],
        tags: Sequence[common_pb2.Tag],
    ) -> None:
        with self._lock:
            run = self._writable(run_id)
            for param in params:  # every check before any write: all or nothing
                self._put_param(run, param)
            batch_params: dict[str, str] = {}
            for param in params:
                if batch_params.setdefault(param.key, param.value) != param.value:
                    raise InvalidParameterValue(
                        f"param {param.key!r} is given twice with two values"
                    )
            run.params.update(batch_params)
            for metric in metrics:
                run.history.setdefault(metric.key, []).append(
                    (metric.step, metric.timestamp, metric.value)
                )
            for tag in tags:
                run.tags[tag.key] = tag.value
                if tag.key == RUN_NAME_TAG:
                    run.info.run_name = tag.value

    def log_inputs(self, run_id: str, inputs: Sequence[tracking_pb2.DatasetInput]) -> None:
        with self._lock:
            run = self._writable(run_id)
            for item in inputs:
                copy = tracking_pb2.DatasetInput.FromString(item.SerializeToString())
                run.inputs[(item.dataset.name, item.dataset.digest)] = copy

    def search_datasets(
        self, experiment_ids: Sequence[str], limit: int
    ) -> list[tracking_pb2.DatasetSummary]:
        wanted = set(experiment_ids)
        found: set[tuple[int, str, str, str, str]] = set()
        with self._lock:
            for run in self._runs.values():
                if run.info.experiment_id not in wanted:
                    continue
                for item in run.inputs.values():
                    context = next((t.value for t in item.tags if t.key == DATASET_CONTEXT_TAG), "")
                    found.add(
                        (
                            int(run.info.experiment_id),
                            run.info.experiment_id,
                            item.dataset.name,
                            item.dataset.digest,
                            context,
                        )
                    )
        return [
            tracking_pb2.DatasetSummary(experiment_id=e, name=n, digest=d, context=c)
            for _, e, n, d, c in sorted(found)[:limit]
        ]

    # ------------------------------------------------------------------- history

    def _points(self, run_id: str, key: str) -> list[HistoryPoint]:
        with self._lock:
            points = list(self._run(run_id).history.get(key, ()))
        return sorted(points, key=lambda p: (p[0], p[1]))

    def get_metric_history(
        self, run_id: str, key: str, max_results: int, page_token: str
    ) -> tuple[list[tracking_pb2.Metric], str]:
        offset = decode_page_token(page_token, "metric-history")
        points = self._points(run_id, key)
        end = len(points) if max_results == 0 else offset + max_results
        page = [
            tracking_pb2.Metric(key=key, value=v, timestamp=t, step=s)
            for s, t, v in points[offset:end]
        ]
        return page, encode_page_token(end, "metric-history") if end < len(points) else ""

    def iter_metric_history(
        self, run_id: str, key: str, chunk_size: int
    ) -> Iterator[Sequence[HistoryPoint]]:
        points = self._points(run_id, key)
        for start in range(0, len(points), chunk_size):
            yield points[start : start + chunk_size]

    def get_metric_history_bulk_interval(
        self,
        run_ids: Sequence[str],
        key: str,
        start_step: int | None,
        end_step: int | None,
        max_results: int,
    ) -> list[tracking_pb2.MetricWithRunId]:
        out: list[tracking_pb2.MetricWithRunId] = []
        for run_id in dict.fromkeys(run_ids):
            if run_id not in self._runs:
                continue
            per_step: dict[int, HistoryPoint] = {}
            for point in self._points(run_id, key):  # by (step, timestamp): the last one stays
                if (start_step is None or point[0] >= start_step) and (
                    end_step is None or point[0] <= end_step
                ):
                    per_step[point[0]] = point
            ordered = [per_step[s] for s in sorted(per_step)]
            for index in _spread(len(ordered), max_results):
                step, timestamp, value = ordered[index]
                metric = tracking_pb2.Metric(key=key, value=value, timestamp=timestamp, step=step)
                out.append(tracking_pb2.MetricWithRunId(metric=metric, run_id=run_id))
        return out


def _stages(view_type: int) -> frozenset[str]:
    if view_type == common_pb2.VIEW_TYPE_DELETED_ONLY:
        return frozenset({DELETED})
    if view_type == common_pb2.VIEW_TYPE_ALL:
        return frozenset({ACTIVE, DELETED})
    return frozenset({ACTIVE})


def _spread(count: int, wanted: int) -> list[int]:
    """``wanted`` indices spread evenly over range(count), always the first and the last."""
    if count <= wanted:
        return list(range(count))
    if wanted <= 1:
        return [count - 1]
    step = (count - 1) / (wanted - 1)
    return sorted({round(i * step) for i in range(wanted)})


def _attribute(run: _Run, key: str) -> object:
    info = run.info
    field = RUN_ATTRIBUTES[key].field  # created reads start_time
    if field == "start_time":
        return float(info.start_time)
    if field == "end_time":
        return float(info.end_time) if info.HasField("end_time") else None
    if field == "status":
        return _status_name(info.status)
    return getattr(info, field)


def _run_values(run: _Run, comp: Comparison) -> list[object]:
    """The values a comparison looks at on one run (empty: the run lacks it)."""
    if comp.kind == "metric":
        latest = run.latest(comp.key) if comp.key in run.history else None
        return [] if latest is None else [latest[2]]
    if comp.kind == "param":
        return [run.params[comp.key]] if comp.key in run.params else []
    if comp.kind == "tag":
        return [run.tags[comp.key]] if comp.key in run.tags else []
    if comp.kind == "dataset":
        values: list[object] = []
        for item in run.inputs.values():
            if comp.key == "context":
                values += [t.value for t in item.tags if t.key == DATASET_CONTEXT_TAG]
            else:
                values.append(getattr(item.dataset, comp.key))
        return values
    value = _attribute(run, comp.key)
    return [] if value is None else [value]


def _run_sort_value(run: _Run, clause: OrderBy) -> object:
    values = _run_values(run, Comparison(clause.kind, clause.key, "=", None, 0))
    return values[0] if values else None
