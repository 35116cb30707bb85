"""The promises of :class:`~mlgrid.registry.store.AbstractRegistryStore`, as tests.

Subclass :class:`RegistryStoreContract` and provide a ``registry_store`` fixture (see
:mod:`mlgrid.testing.tracking_store_contract` for the pattern). Tests name their models with a
unique prefix, so a store may be shared between them. Inputs are what the registry service
would pass: validated and canonical (stages spelled ``"None"``, ``"Staging"``, ...).
"""

from __future__ import annotations

import time
import uuid

import pytest

from mlgrid.exceptions import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from mlgrid.registry.store import AbstractRegistryStore, ModelVersion, RegisteredModel

__all__ = ["RegistryStoreContract"]


def _unique() -> str:
    return f"contract-{uuid.uuid4().hex[:10]}"


def _tags(entity: RegisteredModel | ModelVersion) -> dict[str, str]:
    return {t.key: t.value for t in entity.tags}


class RegistryStoreContract:
    """Tests every model registry store must pass. Provide a ``registry_store`` fixture."""

    @pytest.fixture
    def registry_store(self) -> AbstractRegistryStore:
        raise NotImplementedError("provide a registry_store fixture returning your store")

    def test_a_model_is_created_once_with_its_tags(
        self, registry_store: AbstractRegistryStore
    ) -> None:
        name = _unique()
        created = registry_store.create_registered_model(name, [("team", "risk")], "first")
        assert (created.name, created.description) == (name, "first")
        got = registry_store.get_registered_model(name)
        assert _tags(got) == {"team": "risk"} and got.creation_timestamp > 0
        with pytest.raises(ResourceAlreadyExists):
            registry_store.create_registered_model(name)
        with pytest.raises(ResourceDoesNotExist):
            registry_store.get_registered_model(_unique())

    def test_versions_are_numbered_without_reuse(
        self, registry_store: AbstractRegistryStore
    ) -> None:
        name = _unique()
        registry_store.create_registered_model(name)
        numbers = [
            registry_store.create_model_version(name, f"s3://b/{i}").version for i in range(3)
        ]
        assert numbers == ["1", "2", "3"]
        registry_store.delete_model_version(name, 3)
        assert registry_store.create_model_version(name, "s3://b/again").version == "4"
        version = registry_store.get_model_version(name, 1)
        assert (version.current_stage, version.source) == ("None", "s3://b/0")
        with pytest.raises(ResourceDoesNotExist):
            registry_store.get_model_version(name, 3)

    def test_renaming_carries_versions_tags_and_aliases(
        self, registry_store: AbstractRegistryStore
    ) -> None:
        name, new_name = _unique(), _unique()
        registry_store.create_registered_model(name, [("k", "v")])
        registry_store.create_model_version(name, "s3://b/1", tags=[("t", "1")])
        registry_store.set_registered_model_alias(name, "champion", 1)
        renamed = registry_store.rename_registered_model(name, new_name)
        assert renamed.name == new_name
        version = registry_store.get_model_version_by_alias(new_name, "champion")
        assert (version.name, version.version, _tags(version)) == (new_name, "1", {"t": "1"})
        assert _tags(registry_store.get_registered_model(new_name)) == {"k": "v"}
        with pytest.raises(ResourceDoesNotExist):
            registry_store.get_registered_model(name)
        taken = _unique()
        registry_store.create_registered_model(taken)
        with pytest.raises(ResourceAlreadyExists):
            registry_store.rename_registered_model(new_name, taken)

    def test_deleting_a_model_removes_everything_and_frees_the_name(
        self, registry_store: AbstractRegistryStore
    ) -> None:
        name = _unique()
        registry_store.create_registered_model(name)
        registry_store.create_model_version(name, "s3://b/1")
        registry_store.set_registered_model_alias(name, "prod", 1)
        registry_store.delete_registered_model(name)
        with pytest.raises(ResourceDoesNotExist):
            registry_store.get_model_version(name, 1)
        registry_store.create_registered_model(name)
        assert registry_store.create_model_version(name, "s3://b/new").version == "1"
        assert list(registry_store.get_registered_model(name).aliases) == []

    def test_update_replaces_the_description_and_bumps_the_time(
        self, registry_store: AbstractRegistryStore
    ) -> None:
        name = _unique()
        created = registry_store.create_registered_model(name, description="v1")
        time.sleep(0.005)
        updated = registry_store.update_registered_model(name, "v2")
        assert updated.description == "v2"
        assert updated.last_updated_timestamp > created.last_updated_timestamp
        registry_store.create_model_version(name, "s3://b/1")
        assert registry_store.update_model_version(name, 1, "tuned").description == "tuned"

    def test_tags_overwrite_and_deleting_a_missing_tag_is_not_an_error(
        self, registry_store: AbstractRegistryStore
    ) -> None:
        name = _unique()
        registry_store.create_registered_model(name)
        registry_store.create_model_version(name, "s3://b/1")
        registry_store.set_registered_model_tag(name, "env", "dev")
        registry_store.set_registered_model_tag(name, "env", "prod")
        registry_store.set_model_version_tag(name, 1, "q", "good")
        assert _tags(registry_store.get_registered_model(name)) == {"env": "prod"}
        assert _tags(registry_store.get_model_version(name, 1)) == {"q": "good"}
        for _ in range(2):
            registry_store.delete_registered_model_tag(name, "env")
            registry_store.delete_model_version_tag(name, 1, "q")
        assert _tags(registry_store.get_registered_model(name)) == {}
        with pytest.raises(ResourceDoesNotExist):
            registry_store.delete_registered_model_tag(_unique(), "env")
        with pytest.raises(ResourceDoesNotExist):
            registry_store.delete_model_version_tag(name, 9, "q")

    def test_stages_latest_versions_and_archiving(
        self, registry_store: AbstractRegistryStore
    ) -> None:
        name = _unique()
        registry_store.create_registered_model(name)
        for i in range(3):
            registry_store.create_model_version(name, f"s3://b/{i}")
        registry_store.transition_model_version_stage(name, 1, "Production", False)
        registry_store.transition_model_version_stage(name, 2, "Staging", False)
        moved = registry_store.transition_model_version_stage(name, 3, "Production", True)
        assert moved.current_stage == "Production"
        assert registry_store.get_model_version(name, 1).current_stage == "Archived"
        latest = registry_store.get_latest_versions(name, ["Production", "Staging"])
        assert sorted((v.current_stage, v.version) for v in latest) == [
            ("Production", "3"),
            ("Staging", "2"),
        ]
        every = registry_store.get_registered_model(name).latest_versions
        assert {v.current_stage for v in every} == {"Archived", "Staging", "Production"}
        with pytest.raises(InvalidParameterValue):
            registry_store.transition_model_version_stage(name, 2, "Archived", True)

    def test_aliases_move_and_follow_their_version(
        self, registry_store: AbstractRegistryStore
    ) -> None:
        name = _unique()
        registry_store.create_registered_model(name)
        registry_store.create_model_version(name, "s3://b/1")
        registry_store.create_model_version(name, "s3://b/2")
        registry_store.set_registered_model_alias(name, "champion", 1)
        registry_store.set_registered_model_alias(name, "champion", 2)
        assert registry_store.get_model_version_by_alias(name, "champion").version == "2"
        assert list(registry_store.get_model_version(name, 2).aliases) == ["champion"]
        registry_store.delete_model_version(name, 2)
        with pytest.raises(ResourceDoesNotExist):
            registry_store.get_model_version_by_alias(name, "champion")
        registry_store.set_registered_model_alias(name, "backup", 1)
        registry_store.delete_registered_model_alias(name, "backup")
        registry_store.delete_registered_model_alias(name, "backup")  # not an error
        assert list(registry_store.get_registered_model(name).aliases) == []

    def test_the_download_uri_is_the_storage_location_else_the_source(
        self, registry_store: AbstractRegistryStore
    ) -> None:
        name = _unique()
        registry_store.create_registered_model(name)
        registry_store.create_model_version(
            name, "runs:/abc/model", "abc", storage_location="s3://b/abc/model"
        )
        registry_store.create_model_version(name, "s3://b/plain")
        assert registry_store.get_model_version_download_uri(name, 1) == "s3://b/abc/model"
        assert registry_store.get_model_version_download_uri(name, 2) == "s3://b/plain"

    def test_search_models_filters_orders_and_pages(
        self, registry_store: AbstractRegistryStore
    ) -> None:
        prefix = _unique()
        for suffix, team in (("a", "risk"), ("b", "growth"), ("c", "risk")):
            registry_store.create_registered_model(f"{prefix}-{suffix}", [("team", team)])

        def names(flt: str, order: tuple[str, ...] = ()) -> list[str]:
            page = registry_store.search_registered_models(
                f"name LIKE '{prefix}%'{flt}", 100, order
            )
            return [m.name.removeprefix(prefix + "-") for m in page.items]

        assert names("") == ["a", "b", "c"]
        assert names(" AND tags.team = 'risk'") == ["a", "c"]
        assert names("", ("name DESC",)) == ["c", "b", "a"]
        first = registry_store.search_registered_models(f"name LIKE '{prefix}%'", 2)
        rest = registry_store.search_registered_models(
            f"name LIKE '{prefix}%'", 2, (), first.next_page_token
        )
        assert len(first.items) == 2 and [m.name for m in rest.items] == [f"{prefix}-c"]
        assert rest.next_page_token == ""
        with pytest.raises(InvalidParameterValue):
            registry_store.search_registered_models("nonsense >> 1")
        with pytest.raises(InvalidParameterValue):
            registry_store.search_registered_models("", 10, (), "not-a-token")

    def test_search_versions_filters_and_orders(
        self, registry_store: AbstractRegistryStore
    ) -> None:
        name = _unique()
        registry_store.create_registered_model(name)
        for i in range(3):
            registry_store.create_model_version(name, f"s3://b/{i}", run_id=f"run{i % 2}")
        registry_store.set_model_version_tag(name, 2, "q", "good")

        def versions(flt: str) -> list[str]:
            page = registry_store.search_model_versions(f"name = '{name}'{flt}", 100)
            return [v.version for v in page.items]

        assert versions("") == ["3", "2", "1"]  # default: name ASC, version_number DESC
        assert versions(" AND run_id = 'run0'") == ["3", "1"]
        assert versions(" AND tags.q = 'good'") == ["2"]
        assert versions(" AND source_path = 's3://b/1'") == ["2"]
