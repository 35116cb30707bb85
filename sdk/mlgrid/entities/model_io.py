"""The logged models a run used and produced (MLflow 3's model inputs and outputs)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlgrid.api.tracking.v1 import tracking_pb2


@dataclass(frozen=True)
class LoggedModelInput:
    """A model a run used (a logged model's or a model version's id)."""

    model_id: str

    def to_proto(self) -> tracking_pb2.ModelInput:
        return tracking_pb2.ModelInput(model_id=self.model_id)


@dataclass(frozen=True)
class LoggedModelOutput:
    """A logged model a run produced, at ``step``."""

    model_id: str
    step: int = 0

    def to_proto(self) -> tracking_pb2.ModelOutput:
        return tracking_pb2.ModelOutput(model_id=self.model_id, step=self.step)


@dataclass(frozen=True)
class RunOutputs:
    """A run's outputs: the logged models it produced."""

    model_outputs: list[LoggedModelOutput] = field(default_factory=list)

    @classmethod
    def from_proto(cls, proto: tracking_pb2.RunOutputs) -> RunOutputs:
        return cls([LoggedModelOutput(o.model_id, o.step) for o in proto.model_outputs])
