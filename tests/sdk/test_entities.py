"""Entities: MLflow's shapes and names, and lossless proto round trips."""

from __future__ import annotations

import math

import pytest

from mlgrid.entities import (
    Dataset,
    DatasetInput,
    Experiment,
    InputTag,
    LifecycleStage,
    Metric,
    PagedList,
    Param,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunStatus,
    RunTag,
    ViewType,
)
from mlgrid.exceptions import InvalidParameterValue


def _run() -> Run:
    info = RunInfo(
        run_id="a" * 32,
        experiment_id="3",
        user_id="ada",
        status="FINISHED",
        start_time=1_700_000_000_000,
        end_time=1_700_000_001_000,
        artifact_uri="file:///tmp/a/artifacts",
        run_name="brave-owl-1",
    )
    data = RunData(
        [Metric("loss", 0.25, 1_700_000_000_500, 7)], [Param("lr", "0.01")], [RunTag("team", "x")]
    )
    dataset = Dataset("iris", "abc123", "local", '{"uri": "/data/iris.csv"}', schema='{"a": 1}')
    inputs = RunInputs([DatasetInput(dataset, [InputTag("mlflow.data.context", "train")])])
    return Run(info, data, inputs)


def test_run_round_trips_through_its_proto() -> None:
    run = _run()
    assert Run.from_proto(run.to_proto()) == run


def test_run_data_exposes_dicts_like_mlflow() -> None:
    data = _run().data
    assert data.metrics == {"loss": 0.25}
    assert data.params == {"lr": "0.01"}
    assert data.tags == {"team": "x"}


def test_run_info_speaks_mlflow_strings_and_aliases() -> None:
    info = _run().info
    assert info.status == "FINISHED"
    assert info.run_uuid == info.run_id
    assert info.lifecycle_stage == LifecycleStage.ACTIVE
    assert info.to_proto().status == RunStatus.FINISHED


def test_unended_run_has_no_end_time_after_round_trip() -> None:
    info = RunInfo("b" * 32, "0", "u", "RUNNING", 5, None)
    assert RunInfo.from_proto(info.to_proto()).end_time is None


def test_experiment_round_trips_with_tags_as_dict() -> None:
    experiment = Experiment("7", "exp", "file:///x", "deleted", {"k": "v"}, 1, 2)
    assert Experiment.from_proto(experiment.to_proto()) == experiment


def test_nan_metrics_compare_equal() -> None:
    assert Metric("m", math.nan, 1, 0) == Metric("m", math.nan, 1, 0)


@pytest.mark.parametrize(
    ("name", "number", "terminated"),
    [
        ("RUNNING", 1, False),
        ("SCHEDULED", 2, False),
        ("FINISHED", 3, True),
        ("FAILED", 4, True),
        ("KILLED", 5, True),
    ],
)
def test_run_status_names_and_numbers(name: str, number: int, terminated: bool) -> None:
    assert RunStatus.from_string(name) == number
    assert RunStatus.to_string(number) == name
    assert RunStatus.is_terminated(name) is terminated


def test_unknown_run_status_names_the_allowed_ones() -> None:
    with pytest.raises(InvalidParameterValue, match="RUNNING, SCHEDULED, FINISHED"):
        RunStatus.from_string("DONE")


def test_view_type_from_string_is_case_insensitive() -> None:
    assert ViewType.from_string("active_only") == ViewType.ACTIVE_ONLY == 1
    assert ViewType.from_string("DELETED_ONLY") == ViewType.DELETED_ONLY == 2
    assert ViewType.from_string("All") == ViewType.ALL == 3
    with pytest.raises(InvalidParameterValue, match="ACTIVE_ONLY, DELETED_ONLY, ALL"):
        ViewType.from_string("everything")


def test_lifecycle_stages_per_view_type() -> None:
    assert LifecycleStage.view_type_to_stages(ViewType.ALL) == ["active", "deleted"]
    assert LifecycleStage.matches_view_type(ViewType.DELETED_ONLY, "deleted")
    assert not LifecycleStage.matches_view_type(ViewType.ACTIVE_ONLY, "deleted")


def test_paged_list_is_a_list_with_a_token() -> None:
    page = PagedList([1, 2], "next")
    assert page == [1, 2] and page.token == "next"
    assert PagedList([], "").token is None
