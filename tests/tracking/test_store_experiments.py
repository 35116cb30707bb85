"""Experiments: create, get, get-by-name, rename, delete/restore (with runs), tags."""

from __future__ import annotations

import pytest

from mlgrid.api.common.v1 import common_pb2
from mlgrid.exceptions import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from mlgrid_services.tracking.domain import TrackingDomain

from .conftest import ARTIFACT_ROOT
from .helpers import new_experiment, new_run, unique_name


def test_default_experiment_exists_with_id_0(domain: TrackingDomain) -> None:
    default = domain.get_experiment("0")
    assert default.name == "Default"
    assert default.lifecycle_stage == "active"
    # The session database is shared with other suites: whoever opened it first chose the root
    # (test_store_opens_and_migrates_on_start checks the exact value on a fresh database).
    assert default.artifact_location.endswith("/0")


def test_create_experiment_fills_location_and_times(domain: TrackingDomain) -> None:
    name = unique_name()
    experiment_id = new_experiment(domain, name, team="a")
    got = domain.get_experiment(experiment_id)
    assert got.name == name
    assert got.artifact_location == f"{ARTIFACT_ROOT}/{experiment_id}"
    assert got.creation_time > 0 and got.last_update_time == got.creation_time
    assert {t.key: t.value for t in got.tags} == {"team": "a"}


def test_create_experiment_keeps_explicit_location(domain: TrackingDomain) -> None:
    experiment_id = domain.create_experiment(unique_name(), "s3://bucket/place", [])
    assert domain.get_experiment(experiment_id).artifact_location == "s3://bucket/place"


def test_experiment_names_are_unique_also_against_deleted(domain: TrackingDomain) -> None:
    name = unique_name()
    experiment_id = new_experiment(domain, name)
    with pytest.raises(ResourceAlreadyExists, match=name):
        new_experiment(domain, name)
    domain.delete_experiment(experiment_id)
    with pytest.raises(ResourceAlreadyExists):
        new_experiment(domain, name)


def test_get_unknown_experiment_is_not_found(domain: TrackingDomain) -> None:
    with pytest.raises(ResourceDoesNotExist):
        domain.get_experiment("987654321")
    with pytest.raises(ResourceDoesNotExist):
        domain.get_experiment_by_name(unique_name("missing"))


def test_get_by_name_returns_deleted_experiment_too(domain: TrackingDomain) -> None:
    name = unique_name()
    experiment_id = new_experiment(domain, name)
    domain.delete_experiment(experiment_id)
    got = domain.get_experiment_by_name(name)
    assert got.experiment_id == experiment_id and got.lifecycle_stage == "deleted"


def test_rename_experiment(domain: TrackingDomain) -> None:
    experiment_id = new_experiment(domain)
    new_name = unique_name("renamed")
    domain.rename_experiment(experiment_id, new_name)
    assert domain.get_experiment_by_name(new_name).experiment_id == experiment_id


def test_rename_to_a_taken_name_is_already_exists(domain: TrackingDomain) -> None:
    taken = unique_name()
    new_experiment(domain, taken)
    other = new_experiment(domain)
    with pytest.raises(ResourceAlreadyExists):
        domain.rename_experiment(other, taken)


def test_delete_experiment_soft_deletes_its_runs_and_restore_brings_them_back(
    domain: TrackingDomain,
) -> None:
    experiment_id = new_experiment(domain)
    kept_deleted = new_run(domain, experiment_id).info.run_id
    domain.delete_run(kept_deleted)
    cascaded = new_run(domain, experiment_id).info.run_id
    domain.delete_experiment(experiment_id)
    assert domain.get_experiment(experiment_id).lifecycle_stage == "deleted"
    assert domain.get_run(cascaded).info.lifecycle_stage == "deleted"
    domain.restore_experiment(experiment_id)
    assert domain.get_experiment(experiment_id).lifecycle_stage == "active"
    assert domain.get_run(cascaded).info.lifecycle_stage == "active"
    # A run deleted on its own before the experiment stays deleted.
    assert domain.get_run(kept_deleted).info.lifecycle_stage == "deleted"


def test_runs_of_a_deleted_experiment_refuse_writes(domain: TrackingDomain) -> None:
    experiment_id = new_experiment(domain)
    run_id = new_run(domain, experiment_id).info.run_id
    domain.delete_experiment(experiment_id)
    with pytest.raises(InvalidParameterValue, match="active"):
        domain.log_param(run_id, "a", "1")
    with pytest.raises(InvalidParameterValue, match="deleted"):
        new_run(domain, experiment_id)


def test_default_experiment_cannot_be_deleted(domain: TrackingDomain) -> None:
    with pytest.raises(InvalidParameterValue, match="Default"):
        domain.delete_experiment("0")


def test_restore_of_an_active_experiment_is_rejected(domain: TrackingDomain) -> None:
    with pytest.raises(InvalidParameterValue, match="not deleted"):
        domain.restore_experiment(new_experiment(domain))


def test_experiment_tags_set_overwrite_delete(domain: TrackingDomain) -> None:
    experiment_id = new_experiment(domain)
    before = domain.get_experiment(experiment_id).last_update_time
    domain.set_experiment_tag(experiment_id, "k", "1")
    domain.set_experiment_tag(experiment_id, "k", "2")
    got = domain.get_experiment(experiment_id)
    assert [(t.key, t.value) for t in got.tags] == [("k", "2")]
    assert got.last_update_time >= before
    domain.delete_experiment_tag(experiment_id, "k")
    assert list(domain.get_experiment(experiment_id).tags) == []
    with pytest.raises(ResourceDoesNotExist, match="'k'"):
        domain.delete_experiment_tag(experiment_id, "k")


def test_deleted_experiment_refuses_tag_changes(domain: TrackingDomain) -> None:
    experiment_id = new_experiment(domain)
    domain.delete_experiment(experiment_id)
    with pytest.raises(InvalidParameterValue, match="deleted"):
        domain.set_experiment_tag(experiment_id, "k", "v")


def test_create_experiment_with_duplicate_tag_keys_keeps_the_last(domain: TrackingDomain) -> None:
    experiment_id = domain.create_experiment(
        unique_name(), "", [common_pb2.Tag(key="a", value="1"), common_pb2.Tag(key="a", value="2")]
    )
    assert [(t.key, t.value) for t in domain.get_experiment(experiment_id).tags] == [("a", "2")]
