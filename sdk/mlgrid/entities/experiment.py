"""Experiments and their tags."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2

from ._enums import LifecycleStage


@dataclass(frozen=True)
class ExperimentTag:
    """A tag on an experiment."""

    key: str
    value: str

    def to_proto(self) -> common_pb2.Tag:
        return common_pb2.Tag(key=self.key, value=self.value)

    @classmethod
    def from_proto(cls, proto: common_pb2.Tag) -> ExperimentTag:
        return cls(proto.key, proto.value)


@dataclass(frozen=True)
class Experiment:
    """An experiment. ``tags`` is a dict, as in MLflow."""

    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str = LifecycleStage.ACTIVE
    tags: dict[str, str] = field(default_factory=dict)
    creation_time: int | None = None
    last_update_time: int | None = None

    def to_proto(self) -> tracking_pb2.Experiment:
        return tracking_pb2.Experiment(
            experiment_id=self.experiment_id,
            name=self.name,
            artifact_location=self.artifact_location,
            lifecycle_stage=self.lifecycle_stage,
            creation_time=self.creation_time or 0,
            last_update_time=self.last_update_time or 0,
            tags=[common_pb2.Tag(key=k, value=v) for k, v in self.tags.items()],
        )

    @classmethod
    def from_proto(cls, proto: tracking_pb2.Experiment) -> Experiment:
        return cls(
            experiment_id=proto.experiment_id,
            name=proto.name,
            artifact_location=proto.artifact_location,
            lifecycle_stage=proto.lifecycle_stage or LifecycleStage.ACTIVE,
            tags={tag.key: tag.value for tag in proto.tags},
            creation_time=proto.creation_time or None,
            last_update_time=proto.last_update_time or None,
        )

    def to_dictionary(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "name": self.name,
            "artifact_location": self.artifact_location,
            "lifecycle_stage": self.lifecycle_stage,
            "creation_time": self.creation_time,
            "last_update_time": self.last_update_time,
            "tags": dict(self.tags),
        }
