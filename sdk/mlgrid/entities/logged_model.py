"""MLflow 3's logged models and the model inputs and outputs of runs, as MLflow shapes them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import InvalidParameterValue

from .model_io import LoggedModelInput, LoggedModelOutput, RunOutputs
from .run import Metric

__all__ = [
    "LoggedModel",
    "LoggedModelInput",
    "LoggedModelOutput",
    "LoggedModelParameter",
    "LoggedModelStatus",
    "LoggedModelTag",
    "RunOutputs",
]


class LoggedModelStatus(str, enum.Enum):
    """A logged model's status, with MLflow's names; ``FAILED`` is the proto's UPLOAD_FAILED."""

    UNSPECIFIED = "UNSPECIFIED"
    PENDING = "PENDING"
    READY = "READY"
    FAILED = "FAILED"

    def __str__(self) -> str:
        return self.value

    def to_proto(self) -> int:
        return _STATUS_NUMBERS[self]

    def to_int(self) -> int:
        return _STATUS_NUMBERS[self]

    @classmethod
    def from_proto(cls, number: int) -> LoggedModelStatus:
        try:
            return _STATUS_BY_NUMBER[int(number)]
        except (KeyError, ValueError):
            raise InvalidParameterValue(
                f"Unknown logged model status {number!r}; expected one of "
                f"{sorted(_STATUS_BY_NUMBER)}"
            ) from None

    from_int = from_proto

    @classmethod
    def coerce(cls, status: LoggedModelStatus | str | int) -> LoggedModelStatus:
        """A status given as the enum, its name ("READY") or its proto number."""
        if isinstance(status, cls):
            return status
        if isinstance(status, int):
            return cls.from_proto(status)
        try:
            return cls(str(status).upper())
        except ValueError:
            raise InvalidParameterValue(
                f"Unknown logged model status {status!r}; expected one of "
                f"{', '.join(s.value for s in cls)}"
            ) from None


_STATUS_NUMBERS = {
    LoggedModelStatus.UNSPECIFIED: tracking_pb2.LOGGED_MODEL_STATUS_UNSPECIFIED,
    LoggedModelStatus.PENDING: tracking_pb2.LOGGED_MODEL_STATUS_PENDING,
    LoggedModelStatus.READY: tracking_pb2.LOGGED_MODEL_STATUS_READY,
    LoggedModelStatus.FAILED: tracking_pb2.LOGGED_MODEL_STATUS_UPLOAD_FAILED,
}
_STATUS_BY_NUMBER: dict[int, LoggedModelStatus] = {
    number: status for status, number in _STATUS_NUMBERS.items()
}


@dataclass(frozen=True)
class LoggedModelTag:
    """A tag on a logged model (last writer wins)."""

    key: str
    value: str

    def to_proto(self) -> common_pb2.Tag:
        return common_pb2.Tag(key=self.key, value=self.value)


@dataclass(frozen=True)
class LoggedModelParameter:
    """A param of a logged model (write-once per key)."""

    key: str
    value: str

    def to_proto(self) -> tracking_pb2.Param:
        return tracking_pb2.Param(key=self.key, value=self.value)


@dataclass(frozen=True)
class LoggedModel:
    """A model logged to an experiment (MLflow 3): its own id, artifact location, status,
    params, tags and linked metrics. ``tags`` and ``params`` are dicts, as in MLflow."""

    experiment_id: str
    model_id: str
    name: str
    artifact_location: str
    creation_timestamp: int
    last_updated_timestamp: int
    model_type: str | None = None
    source_run_id: str | None = None
    status: LoggedModelStatus = LoggedModelStatus.READY
    status_message: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: list[Metric] | None = None
    #: Registered model versions made from the model, as ``{"name", "version"}`` dicts.
    registrations: list[dict[str, str]] = field(default_factory=list)

    @property
    def model_uri(self) -> str:
        """``models:/<model_id>``: MLflow 3's URI of a logged model."""
        return f"models:/{self.model_id}"

    @classmethod
    def from_proto(cls, proto: tracking_pb2.LoggedModel) -> LoggedModel:
        info, data = proto.info, proto.data
        return cls(
            experiment_id=info.experiment_id,
            model_id=info.model_id,
            name=info.name,
            artifact_location=info.artifact_uri,
            creation_timestamp=info.creation_timestamp_ms,
            last_updated_timestamp=info.last_updated_timestamp_ms,
            model_type=info.model_type or None,
            source_run_id=info.source_run_id or None,
            status=LoggedModelStatus.from_proto(info.status),
            status_message=info.status_message or None,
            tags={tag.key: tag.value for tag in info.tags},
            params={param.key: param.value for param in data.params},
            metrics=[Metric.from_linked_proto(m) for m in data.metrics] or None,
            registrations=[{"name": r.name, "version": r.version} for r in info.registrations],
        )

    def to_dictionary(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "model_id": self.model_id,
            "name": self.name,
            "artifact_location": self.artifact_location,
            "creation_timestamp": self.creation_timestamp,
            "last_updated_timestamp": self.last_updated_timestamp,
            "model_type": self.model_type,
            "source_run_id": self.source_run_id,
            "status": str(self.status),
            "status_message": self.status_message,
            "tags": dict(self.tags),
            "params": dict(self.params),
            "metrics": [
                {"key": m.key, "value": m.value, "timestamp": m.timestamp, "step": m.step}
                for m in self.metrics or []
            ],
        }
