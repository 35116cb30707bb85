"""The tracking store contract (mlgrid.testing) over every built-in store and the reference
in-memory store, so the abstract store's promises are checked by more than SQL."""

from __future__ import annotations

import pytest

from mlgrid.store.tracking_store import AbstractTrackingStore
from mlgrid.testing import MemoryTrackingStore, TrackingStoreContract


class TestBuiltInStores(TrackingStoreContract):
    @pytest.fixture
    def tracking_store(self, store: AbstractTrackingStore) -> AbstractTrackingStore:
        return store  # the SQL store on SQLite and on PostgreSQL (conftest)


class TestReferenceStore(TrackingStoreContract):
    @pytest.fixture
    def tracking_store(self) -> MemoryTrackingStore:
        return MemoryTrackingStore()
