"""Runs and what is logged to them: metrics, params and tags."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2

from ._enums import LifecycleStage, RunStatus
from .dataset import RunInputs
from .model_io import RunOutputs


@dataclass(slots=True)
class Metric:
    """One metric point. ``run_id`` is set only where a listing spans runs.

    Not frozen, unlike the other entities: histories hold 100,000s of points, and a frozen
    dataclass's constructor is three times slower. Treat it as immutable all the same.
    """

    key: str
    value: float
    timestamp: int
    step: int = 0
    run_id: str | None = None
    #: MLflow 3: the logged model the value describes, and the dataset it was computed on.
    model_id: str | None = None
    dataset_name: str | None = None
    dataset_digest: str | None = None

    def to_proto(self) -> tracking_pb2.Metric:
        return tracking_pb2.Metric(
            key=self.key,
            value=float(self.value),
            timestamp=int(self.timestamp),
            step=int(self.step),
            model_id=self.model_id or "",
            dataset_name=self.dataset_name or "",
            dataset_digest=self.dataset_digest or "",
        )

    @classmethod
    def from_proto(cls, proto: tracking_pb2.Metric, run_id: str | None = None) -> Metric:
        return cls(proto.key, proto.value, proto.timestamp, proto.step, run_id)

    @classmethod
    def from_linked_proto(cls, proto: tracking_pb2.Metric) -> Metric:
        """A point of a logged model's metrics: with its run, model and dataset."""
        return cls(
            proto.key,
            proto.value,
            proto.timestamp,
            proto.step,
            proto.run_id or None,
            proto.model_id or None,
            proto.dataset_name or None,
            proto.dataset_digest or None,
        )

    def __eq__(self, other: object) -> bool:
        # NaN is a legitimate metric value; two NaN points with the same coordinates are equal.
        if not isinstance(other, Metric):
            return NotImplemented
        same_value = self.value == other.value or (
            math.isnan(self.value) and math.isnan(other.value)
        )
        return same_value and (self.key, self.timestamp, self.step, self.run_id) == (
            other.key,
            other.timestamp,
            other.step,
            other.run_id,
        )

    def __hash__(self) -> int:
        return hash((self.key, self.timestamp, self.step, self.run_id))


@dataclass(frozen=True)
class Param:
    """A parameter (write-once per run)."""

    key: str
    value: str

    def to_proto(self) -> tracking_pb2.Param:
        return tracking_pb2.Param(key=self.key, value=self.value)

    @classmethod
    def from_proto(cls, proto: tracking_pb2.Param) -> Param:
        return cls(proto.key, proto.value)


@dataclass(frozen=True)
class RunTag:
    """A tag on a run (last writer wins)."""

    key: str
    value: str

    def to_proto(self) -> common_pb2.Tag:
        return common_pb2.Tag(key=self.key, value=self.value)

    @classmethod
    def from_proto(cls, proto: common_pb2.Tag) -> RunTag:
        return cls(proto.key, proto.value)


@dataclass(frozen=True)
class RunInfo:
    """A run's metadata. ``status`` is MLflow's string ("RUNNING", "FINISHED", ...)."""

    run_id: str
    experiment_id: str
    user_id: str
    status: str
    start_time: int | None
    end_time: int | None
    lifecycle_stage: str = LifecycleStage.ACTIVE
    artifact_uri: str | None = None
    run_name: str | None = None

    @property
    def run_uuid(self) -> str:
        """MLflow's old name for ``run_id``."""
        return self.run_id

    def _copy_with_overrides(self, **changes: Any) -> RunInfo:
        return replace(self, **changes)

    def to_proto(self) -> tracking_pb2.RunInfo:
        proto = tracking_pb2.RunInfo(
            run_id=self.run_id,
            run_name=self.run_name or "",
            experiment_id=self.experiment_id,
            user_id=self.user_id,
            status=RunStatus.to_proto(self.status),
            start_time=self.start_time or 0,
            artifact_uri=self.artifact_uri or "",
            lifecycle_stage=self.lifecycle_stage,
        )
        if self.end_time is not None:
            proto.end_time = self.end_time
        return proto

    @classmethod
    def from_proto(cls, proto: tracking_pb2.RunInfo) -> RunInfo:
        # A frozen dataclass's __init__ goes through object.__setattr__ once per field; a search
        # page builds hundreds of these, so the fields are put in the instance dict at once
        # (the same state __init__ leaves; eq, hash and repr read the fields alike).
        info = object.__new__(cls)
        info.__dict__.update(
            run_id=proto.run_id,
            experiment_id=proto.experiment_id,
            user_id=proto.user_id,
            status=RunStatus.from_proto(proto.status),
            start_time=proto.start_time or None,
            end_time=proto.end_time if proto.HasField("end_time") else None,
            lifecycle_stage=proto.lifecycle_stage or LifecycleStage.ACTIVE,
            artifact_uri=proto.artifact_uri or None,
            run_name=proto.run_name or None,
        )
        return info


class RunData:
    """Latest metrics, params and tags of a run, each as a ``{key: value}`` dict like MLflow."""

    def __init__(
        self,
        metrics: Iterable[Metric] = (),
        params: Iterable[Param] = (),
        tags: Iterable[RunTag] = (),
    ) -> None:
        self._metric_objs = list(metrics)
        self._params = {param.key: param.value for param in params}
        self._tags = {tag.key: tag.value for tag in tags}
        self._metrics = {metric.key: metric.value for metric in self._metric_objs}

    @property
    def metrics(self) -> dict[str, float]:
        return self._metrics

    @property
    def latest_metrics(self) -> list[Metric]:
        """The point behind each value of ``metrics``, with its timestamp and step."""
        return self._metric_objs

    @property
    def params(self) -> dict[str, str]:
        return self._params

    @property
    def tags(self) -> dict[str, str]:
        return self._tags

    def to_proto(self) -> tracking_pb2.RunData:
        return tracking_pb2.RunData(
            metrics=[metric.to_proto() for metric in self._metric_objs],
            params=[tracking_pb2.Param(key=k, value=v) for k, v in self._params.items()],
            tags=[common_pb2.Tag(key=k, value=v) for k, v in self._tags.items()],
        )

    @classmethod
    def from_proto(cls, proto: tracking_pb2.RunData) -> RunData:
        # Straight to the dicts __init__ would build, without a Param / RunTag per entry.
        data = cls.__new__(cls)
        metrics = [Metric(m.key, m.value, m.timestamp, m.step) for m in proto.metrics]
        data._metric_objs = metrics
        data._params = {param.key: param.value for param in proto.params}
        data._tags = {tag.key: tag.value for tag in proto.tags}
        data._metrics = {metric.key: metric.value for metric in metrics}
        return data

    def to_dictionary(self) -> dict[str, dict[str, Any]]:
        return {"metrics": dict(self.metrics), "params": dict(self.params), "tags": dict(self.tags)}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunData):
            return NotImplemented
        return self.to_dictionary() == other.to_dictionary()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<RunData: metrics={self.metrics!r}, params={self.params!r}, tags={self.tags!r}>"


@dataclass(frozen=True)
class Run:
    """A run: ``info`` (metadata), ``data`` (metrics, params, tags), ``inputs`` (datasets and
    models used) and ``outputs`` (logged models produced)."""

    info: RunInfo
    data: RunData = field(default_factory=RunData)
    inputs: RunInputs = field(default_factory=RunInputs)
    outputs: RunOutputs = field(default_factory=RunOutputs)

    def to_proto(self) -> tracking_pb2.Run:
        return tracking_pb2.Run(
            info=self.info.to_proto(), data=self.data.to_proto(), inputs=self.inputs.to_proto()
        )

    @classmethod
    def from_proto(cls, proto: tracking_pb2.Run) -> Run:
        run = object.__new__(cls)  # as RunInfo.from_proto: skip the frozen __init__
        run.__dict__.update(
            info=RunInfo.from_proto(proto.info),
            data=RunData.from_proto(proto.data),
            inputs=RunInputs.from_proto(proto.inputs),
            outputs=RunOutputs.from_proto(proto.outputs),
        )
        return run

    def to_dictionary(self) -> dict[str, Any]:
        info = {
            "run_id": self.info.run_id,
            "run_name": self.info.run_name,
            "experiment_id": self.info.experiment_id,
            "user_id": self.info.user_id,
            "status": self.info.status,
            "start_time": self.info.start_time,
            "end_time": self.info.end_time,
            "artifact_uri": self.info.artifact_uri,
            "lifecycle_stage": self.info.lifecycle_stage,
        }
        return {"info": info, "data": self.data.to_dictionary()}
