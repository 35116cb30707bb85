"""The SQL registry store suite, run on SQLite and on PostgreSQL."""

from __future__ import annotations

import time

import pytest

from mlgrid.exceptions import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from mlgrid_services.registry.sqlstore.store import SqlRegistryStore


def _names(page) -> list[str]:
    return [m.name for m in page.items]


def _versions(page) -> list[tuple[str, str]]:
    return [(v.name, v.version) for v in page.items]


def _tags(entity) -> dict[str, str]:
    return {t.key: t.value for t in entity.tags}


# --- registered models ---------------------------------------------------------------------


def test_created_model_reads_back_with_tags_and_description(store: SqlRegistryStore) -> None:
    created = store.create_registered_model("fraud", [("team", "risk")], "detects fraud")
    got = store.get_registered_model("fraud")
    assert got.name == "fraud"
    assert got.description == "detects fraud"
    assert _tags(got) == {"team": "risk"}
    assert got.creation_timestamp == got.last_updated_timestamp == created.creation_timestamp > 0


def test_duplicate_model_name_is_refused(store: SqlRegistryStore) -> None:
    store.create_registered_model("fraud")
    with pytest.raises(ResourceAlreadyExists, match="fraud"):
        store.create_registered_model("fraud")


def test_missing_model_is_not_found(store: SqlRegistryStore) -> None:
    with pytest.raises(ResourceDoesNotExist, match="ghost"):
        store.get_registered_model("ghost")


def test_rename_carries_versions_tags_and_aliases(store: SqlRegistryStore) -> None:
    store.create_registered_model("old", [("k", "v")])
    store.create_model_version("old", "s3://b/m1")
    store.create_model_version("old", "s3://b/m2")
    store.set_registered_model_alias("old", "champion", 2)
    renamed = store.rename_registered_model("old", "new")
    assert renamed.name == "new"
    assert store.get_model_version("new", 1).source == "s3://b/m1"
    assert store.get_model_version_by_alias("new", "champion").version == "2"
    assert _tags(store.get_registered_model("new")) == {"k": "v"}
    with pytest.raises(ResourceDoesNotExist):
        store.get_registered_model("old")


def test_rename_onto_a_taken_name_is_refused(store: SqlRegistryStore) -> None:
    store.create_registered_model("a")
    store.create_registered_model("b")
    with pytest.raises(ResourceAlreadyExists, match="'b'"):
        store.rename_registered_model("a", "b")
    assert store.get_registered_model("a").name == "a"


def test_update_replaces_description_and_bumps_update_time(store: SqlRegistryStore) -> None:
    created = store.create_registered_model("m", description="v1")
    time.sleep(0.005)
    updated = store.update_registered_model("m", "v2")
    assert updated.description == "v2"
    assert updated.last_updated_timestamp > created.last_updated_timestamp


def test_delete_model_removes_everything_and_frees_the_name(store: SqlRegistryStore) -> None:
    store.create_registered_model("m", [("k", "v")])
    store.create_model_version("m", "s3://b/1", tags=[("t", "1")])
    store.create_model_version("m", "s3://b/2")
    store.set_registered_model_alias("m", "prod", 1)
    store.delete_registered_model("m")
    with pytest.raises(ResourceDoesNotExist):
        store.get_model_version("m", 1)
    assert store.search_model_versions("name = 'm'").items == []
    store.create_registered_model("m")
    assert store.create_model_version("m", "s3://b/new").version == "1"
    assert store.get_registered_model("m").aliases == []


def test_model_tags_overwrite_and_delete(store: SqlRegistryStore) -> None:
    store.create_registered_model("m")
    store.set_registered_model_tag("m", "env", "dev")
    store.set_registered_model_tag("m", "env", "prod")
    assert _tags(store.get_registered_model("m")) == {"env": "prod"}
    store.delete_registered_model_tag("m", "env")
    assert _tags(store.get_registered_model("m")) == {}
    store.delete_registered_model_tag("m", "env")  # deleting again is a no-op, as in MLflow
    with pytest.raises(ResourceDoesNotExist, match="ghost"):
        store.delete_registered_model_tag("ghost", "env")


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("name = 'fraud-a'", ["fraud-a"]),
        ("name != 'fraud-a'", ["Fraud-B", "churn"]),
        ("name LIKE 'fraud%'", ["fraud-a"]),
        ("name ILIKE 'fraud%'", ["Fraud-B", "fraud-a"]),
        ("name IN ('churn', 'fraud-a')", ["churn", "fraud-a"]),
        ("tags.team = 'risk'", ["Fraud-B", "fraud-a"]),
        ("tags.team = 'risk' AND name LIKE '%B'", ["Fraud-B"]),
        ("tags.`team` ILIKE 'GROWTH'", ["churn"]),
        ("tags.owner IS NULL", ["Fraud-B", "churn"]),
        ("", ["Fraud-B", "churn", "fraud-a"]),
    ],
)
def test_search_models_filters(
    store: SqlRegistryStore, filter_string: str, expected: list[str]
) -> None:
    store.create_registered_model("fraud-a", [("team", "risk"), ("owner", "ann")])
    store.create_registered_model("Fraud-B", [("team", "risk")])
    store.create_registered_model("churn", [("team", "growth")])
    assert sorted(_names(store.search_registered_models(filter_string))) == sorted(expected)


def test_search_models_orders_and_pages(store: SqlRegistryStore) -> None:
    for name in ["c", "a", "d", "b", "e"]:
        store.create_registered_model(name)
        time.sleep(0.002)
    first = store.search_registered_models(max_results=2)
    assert _names(first) == ["a", "b"]
    second = store.search_registered_models(max_results=2, page_token=first.next_page_token)
    third = store.search_registered_models(max_results=2, page_token=second.next_page_token)
    assert _names(second) == ["c", "d"]
    assert _names(third) == ["e"] and third.next_page_token == ""
    newest_first = store.search_registered_models(order_by=["creation_timestamp DESC"])
    assert _names(newest_first) == ["e", "b", "d", "a", "c"]
    assert _names(store.search_registered_models(order_by=["name DESC"])) == [
        "e",
        "d",
        "c",
        "b",
        "a",
    ]


@pytest.mark.parametrize(
    ("filter_string", "order_by"),
    [
        ("name = fraud", []),
        ("description = 'x'", []),
        ("name > 'a'", []),
        ("name = 'a' OR name = 'b'", []),
        ("", ["stage ASC"]),
        ("", ["name SIDEWAYS"]),
    ],
)
def test_bad_model_searches_are_refused(
    store: SqlRegistryStore, filter_string: str, order_by: list[str]
) -> None:
    with pytest.raises(InvalidParameterValue):
        store.search_registered_models(filter_string, order_by=order_by)


def test_a_forged_page_token_is_refused(store: SqlRegistryStore) -> None:
    with pytest.raises(InvalidParameterValue, match="page_token"):
        store.search_registered_models(page_token="not-a-token")


def test_model_carries_latest_version_per_stage_and_aliases(store: SqlRegistryStore) -> None:
    store.create_registered_model("m")
    for i in range(4):
        store.create_model_version("m", f"s3://b/{i}")
    store.transition_model_version_stage("m", 1, "Production", False)
    store.transition_model_version_stage("m", 2, "Staging", False)
    store.set_registered_model_alias("m", "champion", 1)
    model = store.get_registered_model("m")
    assert {(v.current_stage, v.version) for v in model.latest_versions} == {
        ("None", "4"),
        ("Staging", "2"),
        ("Production", "1"),
    }
    assert [(a.alias, a.version) for a in model.aliases] == [("champion", "1")]
    latest = store.get_latest_versions("m", ["Production", "Staging"])
    assert sorted(v.version for v in latest) == ["1", "2"]
    assert store.get_latest_versions("m", ["Archived"]) == []


# --- model versions ------------------------------------------------------------------------


def test_versions_count_up_and_deleted_numbers_are_not_reused(store: SqlRegistryStore) -> None:
    store.create_registered_model("m")
    assert [store.create_model_version("m", "s3://b/x").version for _ in range(3)] == [
        "1",
        "2",
        "3",
    ]
    store.delete_model_version("m", 3)
    assert store.create_model_version("m", "s3://b/x").version == "4"


def test_version_fields_read_back(store: SqlRegistryStore) -> None:
    store.create_registered_model("m")
    created = store.create_model_version(
        "m",
        "runs:/abc/model",
        "abc",
        [("k", "v")],
        "http://ui/run",
        "first",
        "ann",
        "file:///art/abc/artifacts/model",
    )
    got = store.get_model_version("m", 1)
    assert got == created
    assert (got.run_id, got.run_link, got.description, got.user_id) == (
        "abc",
        "http://ui/run",
        "first",
        "ann",
    )
    assert got.current_stage == "None" and got.status == 3  # READY
    assert store.get_model_version_download_uri("m", 1) == "file:///art/abc/artifacts/model"


def test_download_uri_falls_back_to_the_source(store: SqlRegistryStore) -> None:
    store.create_registered_model("m")
    store.create_model_version("m", "s3://bucket/model")
    assert store.get_model_version_download_uri("m", 1) == "s3://bucket/model"


def test_version_of_a_missing_model_is_not_found(store: SqlRegistryStore) -> None:
    with pytest.raises(ResourceDoesNotExist, match="ghost"):
        store.create_model_version("ghost", "s3://b/x")
    store.create_registered_model("m")
    with pytest.raises(ResourceDoesNotExist, match="version=7"):
        store.get_model_version("m", 7)


def test_update_and_delete_version(store: SqlRegistryStore) -> None:
    store.create_registered_model("m")
    store.create_model_version("m", "s3://b/x", tags=[("k", "v")])
    store.set_registered_model_alias("m", "prod", 1)
    assert store.update_model_version("m", 1, "better").description == "better"
    store.delete_model_version("m", 1)
    with pytest.raises(ResourceDoesNotExist):
        store.get_model_version("m", 1)
    with pytest.raises(ResourceDoesNotExist, match="prod"):
        store.get_model_version_by_alias("m", "prod")
    assert store.get_registered_model("m").aliases == []


def test_version_tags_overwrite_and_delete(store: SqlRegistryStore) -> None:
    store.create_registered_model("m")
    store.create_model_version("m", "s3://b/x")
    store.set_model_version_tag("m", 1, "quality", "ok")
    store.set_model_version_tag("m", 1, "quality", "great")
    assert _tags(store.get_model_version("m", 1)) == {"quality": "great"}
    store.delete_model_version_tag("m", 1, "quality")
    assert _tags(store.get_model_version("m", 1)) == {}
    store.delete_model_version_tag("m", 1, "quality")  # deleting again is a no-op, as in MLflow
    with pytest.raises(ResourceDoesNotExist, match="version=2"):
        store.delete_model_version_tag("m", 2, "quality")


@pytest.fixture
def three_models(store: SqlRegistryStore) -> SqlRegistryStore:
    store.create_registered_model("a")
    store.create_registered_model("b")
    store.create_model_version("a", "s3://b/a1", "run1", [("env", "dev")])
    store.create_model_version("a", "s3://b/a2", "run2", [("env", "prod")])
    store.create_model_version("a", "s3://other/a3", "run2")
    store.create_model_version("b", "s3://b/b1", "run1", [("env", "prod")])
    return store


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("name = 'a'", [("a", "3"), ("a", "2"), ("a", "1")]),
        ("name = 'a' AND version_number >= 2", [("a", "3"), ("a", "2")]),
        ("version_number = 1", [("a", "1"), ("b", "1")]),
        ("version_number IN (1, 3)", [("a", "3"), ("a", "1"), ("b", "1")]),
        ("run_id = 'run1'", [("a", "1"), ("b", "1")]),
        ("run_id IN ('run2')", [("a", "3"), ("a", "2")]),
        ("source_path LIKE 's3://other/%'", [("a", "3")]),
        ("tags.env = 'prod'", [("a", "2"), ("b", "1")]),
        ("tags.env != 'prod'", [("a", "1")]),
        ("name ILIKE 'A' AND tags.env LIKE 'pr%'", [("a", "2")]),
    ],
)
def test_search_versions_filters(
    three_models: SqlRegistryStore, filter_string: str, expected: list
) -> None:
    assert _versions(three_models.search_model_versions(filter_string)) == expected


def test_search_versions_orders_and_pages(three_models: SqlRegistryStore) -> None:
    ordered = three_models.search_model_versions(order_by=["version_number ASC", "name DESC"])
    assert _versions(ordered) == [("b", "1"), ("a", "1"), ("a", "2"), ("a", "3")]
    first = three_models.search_model_versions("name = 'a'", max_results=2)
    rest = three_models.search_model_versions(
        "name = 'a'", max_results=2, page_token=first.next_page_token
    )
    assert _versions(first) + _versions(rest) == [("a", "3"), ("a", "2"), ("a", "1")]
    assert rest.next_page_token == ""


def test_search_versions_refuses_unknown_attributes(three_models: SqlRegistryStore) -> None:
    with pytest.raises(InvalidParameterValue, match="current_stage"):
        three_models.search_model_versions("current_stage = 'Production'")
    with pytest.raises(InvalidParameterValue, match="number"):
        three_models.search_model_versions("version_number = 'one'")


# --- stages and aliases --------------------------------------------------------------------


def test_transition_with_archive_existing_versions(store: SqlRegistryStore) -> None:
    store.create_registered_model("m")
    for _ in range(3):
        store.create_model_version("m", "s3://b/x")
    store.transition_model_version_stage("m", 1, "Production", False)
    store.transition_model_version_stage("m", 2, "Production", False)
    moved = store.transition_model_version_stage("m", 3, "Production", True)
    assert moved.current_stage == "Production"
    stages = {v.version: v.current_stage for v in store.search_model_versions("name = 'm'").items}
    assert stages == {"1": "Archived", "2": "Archived", "3": "Production"}


def test_transition_without_archiving_leaves_others(store: SqlRegistryStore) -> None:
    store.create_registered_model("m")
    for _ in range(2):
        store.create_model_version("m", "s3://b/x")
    store.transition_model_version_stage("m", 1, "Staging", False)
    store.transition_model_version_stage("m", 2, "Staging", False)
    stages = {v.version: v.current_stage for v in store.search_model_versions("name = 'm'").items}
    assert stages == {"1": "Staging", "2": "Staging"}


def test_archiving_others_is_only_for_staging_and_production(store: SqlRegistryStore) -> None:
    store.create_registered_model("m")
    store.create_model_version("m", "s3://b/x")
    with pytest.raises(InvalidParameterValue, match="archive_existing_versions"):
        store.transition_model_version_stage("m", 1, "Archived", True)


def test_alias_set_move_get_and_delete(store: SqlRegistryStore) -> None:
    store.create_registered_model("m")
    store.create_model_version("m", "s3://b/1")
    store.create_model_version("m", "s3://b/2")
    store.set_registered_model_alias("m", "champion", 1)
    assert store.get_model_version_by_alias("m", "champion").source == "s3://b/1"
    store.set_registered_model_alias("m", "champion", 2)
    found = store.get_model_version_by_alias("m", "champion")
    assert (found.version, list(found.aliases)) == ("2", ["champion"])
    assert list(store.get_model_version("m", 1).aliases) == []
    store.delete_registered_model_alias("m", "champion")
    with pytest.raises(ResourceDoesNotExist, match="champion"):
        store.get_model_version_by_alias("m", "champion")


def test_alias_on_a_missing_version_is_not_found(store: SqlRegistryStore) -> None:
    store.create_registered_model("m")
    with pytest.raises(ResourceDoesNotExist, match="version=5"):
        store.set_registered_model_alias("m", "champion", 5)


def test_a_version_keeps_the_logged_model_it_was_made_from(store: SqlRegistryStore) -> None:
    store.create_registered_model("from-logged")
    linked = store.create_model_version(
        "from-logged", "models:/m-abc", storage_location="s3://b/m", model_id="m-abc"
    )
    plain = store.create_model_version("from-logged", "s3://b/other")
    assert linked.model_id == "m-abc" and not plain.model_id
    assert store.get_model_version("from-logged", 1).model_id == "m-abc"
    store.set_registered_model_alias("from-logged", "champion", 1)
    assert store.get_model_version_by_alias("from-logged", "champion").model_id == "m-abc"
    found = store.search_model_versions("name = 'from-logged'", 10, [], "")
    assert {v.version: v.model_id for v in found.items} == {"1": "m-abc", "2": ""}
