"""MLflow-shaped domain objects built from the tracking protos (``mlgrid.entities``)."""

from ._enums import LifecycleStage, RunStatus, SourceType, ViewType
from .dataset import Dataset, DatasetInput, DatasetSummary, InputTag, RunInputs
from .experiment import Experiment, ExperimentTag
from .logged_model import LoggedModel, LoggedModelParameter, LoggedModelStatus, LoggedModelTag
from .model_io import LoggedModelInput, LoggedModelOutput, RunOutputs
from .paged_list import PagedList
from .run import Metric, Param, Run, RunData, RunInfo, RunTag

__all__ = [
    "Dataset",
    "DatasetInput",
    "DatasetSummary",
    "Experiment",
    "ExperimentTag",
    "InputTag",
    "LifecycleStage",
    "LoggedModel",
    "LoggedModelInput",
    "LoggedModelOutput",
    "LoggedModelParameter",
    "LoggedModelStatus",
    "LoggedModelTag",
    "Metric",
    "PagedList",
    "Param",
    "Run",
    "RunData",
    "RunInfo",
    "RunInputs",
    "RunOutputs",
    "RunStatus",
    "RunTag",
    "SourceType",
    "ViewType",
]
