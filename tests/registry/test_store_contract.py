"""The registry store contract (mlgrid.testing) over the SQL registry store (SQLite and
PostgreSQL) and over the reference in-memory store."""

from __future__ import annotations

import pytest

from mlgrid.registry.store import AbstractRegistryStore
from mlgrid.testing import MemoryRegistryStore, RegistryStoreContract


class TestBuiltInStores(RegistryStoreContract):
    @pytest.fixture
    def registry_store(self, store: AbstractRegistryStore) -> AbstractRegistryStore:
        return store  # the SQL registry store on SQLite and on PostgreSQL (conftest)


class TestReferenceStore(RegistryStoreContract):
    @pytest.fixture
    def registry_store(self) -> MemoryRegistryStore:
        return MemoryRegistryStore()
