"""MLflow-shaped domain objects built from the tracking protos (``mlgrid.entities``)."""

from ._enums import LifecycleStage, RunStatus, SourceType, ViewType
from .dataset import Dataset, DatasetInput, InputTag, RunInputs
from .experiment import Experiment, ExperimentTag
from .paged_list import PagedList
from .run import Metric, Param, Run, RunData, RunInfo, RunTag

__all__ = [
    "Dataset",
    "DatasetInput",
    "Experiment",
    "ExperimentTag",
    "InputTag",
    "LifecycleStage",
    "Metric",
    "PagedList",
    "Param",
    "Run",
    "RunData",
    "RunInfo",
    "RunInputs",
    "RunStatus",
    "RunTag",
    "SourceType",
    "ViewType",
]
