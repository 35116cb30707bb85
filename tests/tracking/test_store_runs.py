"""Runs: create (names, tags, artifact URI), get, update, delete/restore."""

from __future__ import annotations

import re

import pytest

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist
from mlgrid_services.tracking.domain import TrackingDomain

from .helpers import new_experiment, new_run, tags_of


def test_create_run_defaults(domain: TrackingDomain) -> None:
    experiment_id = new_experiment(domain)
    run = new_run(domain, experiment_id)
    info = run.info
    assert re.fullmatch(r"[0-9a-f]{32}", info.run_id)
    assert info.status == tracking_pb2.RUN_STATUS_RUNNING
    assert info.lifecycle_stage == "active"
    assert info.start_time > 0 and not info.HasField("end_time")
    location = domain.get_experiment(experiment_id).artifact_location
    assert info.artifact_uri == f"{location}/{info.run_id}/artifacts"
    assert domain.get_run(info.run_id) == run


def test_generated_run_name_is_adjective_noun_number_and_mirrored(domain: TrackingDomain) -> None:
    run = new_run(domain)
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d{3}", run.info.run_name)
    assert tags_of(run)["mlflow.runName"] == run.info.run_name


def test_run_name_from_argument_or_from_tag(domain: TrackingDomain) -> None:
    assert new_run(domain, run_name="given").info.run_name == "given"
    from_tag = domain.create_run(
        new_experiment(domain), "", 0, [common_pb2.Tag(key="mlflow.runName", value="tagged")], ""
    )
    assert from_tag.info.run_name == "tagged"


def test_run_name_and_tag_that_disagree_are_rejected(domain: TrackingDomain) -> None:
    with pytest.raises(InvalidParameterValue, match=r"mlflow\.runName"):
        domain.create_run(
            new_experiment(domain), "", 0, [common_pb2.Tag(key="mlflow.runName", value="a")], "b"
        )


def test_create_run_in_default_experiment_when_none_given(domain: TrackingDomain) -> None:
    run = domain.create_run("", "", 1234, [], "x")
    assert run.info.experiment_id == "0"
    assert run.info.start_time == 1234


def test_create_run_in_unknown_experiment_is_not_found(domain: TrackingDomain) -> None:
    with pytest.raises(ResourceDoesNotExist):
        domain.create_run("99999999", "", 0, [], "")


def test_update_run_status_end_time_and_name(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    info = domain.update_run(run_id, tracking_pb2.RUN_STATUS_FINISHED, 99, "renamed")
    assert info.status == tracking_pb2.RUN_STATUS_FINISHED
    assert info.end_time == 99 and info.run_name == "renamed"
    assert tags_of(domain.get_run(run_id))["mlflow.runName"] == "renamed"
    # Unspecified fields stay as they are.
    info = domain.update_run(run_id, 0, None, "")
    assert info.status == tracking_pb2.RUN_STATUS_FINISHED and info.run_name == "renamed"


def test_setting_the_run_name_tag_renames_the_run(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    domain.set_tag(run_id, "mlflow.runName", "via-tag")
    assert domain.get_run(run_id).info.run_name == "via-tag"


def test_delete_and_restore_run(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    domain.delete_run(run_id)
    assert domain.get_run(run_id).info.lifecycle_stage == "deleted"
    domain.restore_run(run_id)
    assert domain.get_run(run_id).info.lifecycle_stage == "active"


def test_deleted_run_refuses_every_write_and_keeps_data(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    domain.log_param(run_id, "p", "1")
    domain.delete_run(run_id)
    writes = [
        lambda: domain.log_param(run_id, "q", "1"),
        lambda: domain.log_metric(run_id, tracking_pb2.Metric(key="m", value=1, timestamp=1)),
        lambda: domain.set_tag(run_id, "t", "v"),
        lambda: domain.delete_tag(run_id, "mlflow.runName"),
        lambda: domain.log_batch(run_id, [], [tracking_pb2.Param(key="r", value="1")], []),
        lambda: domain.update_run(run_id, tracking_pb2.RUN_STATUS_FAILED, None, ""),
    ]
    for write in writes:
        with pytest.raises(InvalidParameterValue, match="'active' state"):
            write()
    run = domain.get_run(run_id)
    assert {p.key for p in run.data.params} == {"p"}
    assert "t" not in tags_of(run)


def test_restore_run_of_deleted_experiment_is_rejected(domain: TrackingDomain) -> None:
    experiment_id = new_experiment(domain)
    run_id = new_run(domain, experiment_id).info.run_id
    domain.delete_experiment(experiment_id)
    with pytest.raises(InvalidParameterValue, match="experiment is deleted"):
        domain.restore_run(run_id)


def test_unknown_run_is_not_found(domain: TrackingDomain) -> None:
    missing = "f" * 32
    with pytest.raises(ResourceDoesNotExist, match=missing):
        domain.get_run(missing)
    with pytest.raises(ResourceDoesNotExist):
        domain.log_param(missing, "a", "1")
    with pytest.raises(ResourceDoesNotExist):
        domain.delete_run(missing)
    with pytest.raises(ResourceDoesNotExist):
        domain.log_metric(missing, tracking_pb2.Metric(key="m", value=1.0, timestamp=1))
    with pytest.raises(ResourceDoesNotExist):
        domain.ingest_metrics(missing, [tracking_pb2.Metric(key="m", value=1.0, timestamp=1)] * 3)
