"""Datasets a run used (``log_input``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2

from .model_io import LoggedModelInput


@dataclass(frozen=True)
class InputTag:
    """A tag on a dataset input, e.g. ``mlflow.data.context=train``."""

    key: str
    value: str

    def to_proto(self) -> common_pb2.Tag:
        return common_pb2.Tag(key=self.key, value=self.value)

    @classmethod
    def from_proto(cls, proto: common_pb2.Tag) -> InputTag:
        return cls(proto.key, proto.value)


@dataclass(frozen=True)
class Dataset:
    """A dataset's identity ((name, digest) within an experiment) and description."""

    name: str
    digest: str
    source_type: str
    source: str
    schema: str | None = None
    profile: str | None = None

    def to_proto(self) -> tracking_pb2.Dataset:
        return tracking_pb2.Dataset(
            name=self.name,
            digest=self.digest,
            source_type=self.source_type,
            source=self.source,
            schema=self.schema or "",
            profile=self.profile or "",
        )

    @classmethod
    def from_proto(cls, proto: tracking_pb2.Dataset) -> Dataset:
        return cls(
            name=proto.name,
            digest=proto.digest,
            source_type=proto.source_type,
            source=proto.source,
            schema=proto.schema or None,
            profile=proto.profile or None,
        )


@dataclass(frozen=True)
class DatasetSummary:
    """A dataset as the runs of one experiment used it: ``context`` is the input's
    ``mlflow.data.context`` tag (e.g. ``"train"``), None when the input has none."""

    experiment_id: str
    name: str
    digest: str
    context: str | None = None

    @classmethod
    def from_proto(cls, proto: tracking_pb2.DatasetSummary) -> DatasetSummary:
        return cls(proto.experiment_id, proto.name, proto.digest, proto.context or None)


@dataclass(frozen=True)
class DatasetInput:
    """A dataset together with the tags of its use by one run."""

    dataset: Dataset
    tags: list[InputTag] = field(default_factory=list)

    def to_proto(self) -> tracking_pb2.DatasetInput:
        return tracking_pb2.DatasetInput(
            dataset=self.dataset.to_proto(), tags=[tag.to_proto() for tag in self.tags]
        )

    @classmethod
    def from_proto(cls, proto: tracking_pb2.DatasetInput) -> DatasetInput:
        return cls(
            dataset=Dataset.from_proto(proto.dataset),
            tags=[InputTag.from_proto(tag) for tag in proto.tags],
        )


@dataclass(frozen=True)
class RunInputs:
    """A run's inputs."""

    dataset_inputs: list[DatasetInput] = field(default_factory=list)
    model_inputs: list[LoggedModelInput] = field(default_factory=list)

    def to_proto(self) -> tracking_pb2.RunInputs:
        return tracking_pb2.RunInputs(
            dataset_inputs=[entry.to_proto() for entry in self.dataset_inputs],
            model_inputs=[entry.to_proto() for entry in self.model_inputs],
        )

    @classmethod
    def from_proto(cls, proto: tracking_pb2.RunInputs) -> RunInputs:
        # As RunInfo.from_proto: skip the frozen __init__ (every run of a search page has one).
        inputs = object.__new__(cls)
        inputs.__dict__["dataset_inputs"] = [
            DatasetInput.from_proto(entry) for entry in proto.dataset_inputs
        ]
        inputs.__dict__["model_inputs"] = [
            LoggedModelInput(entry.model_id) for entry in proto.model_inputs
        ]
        return inputs
