"""Test suites and reference implementations for people who build on mlgrid's interfaces.

``TrackingStoreContract`` and ``RegistryStoreContract`` are the abstract stores' promises as
pytest tests: subclass one and provide a ``tracking_store`` / ``registry_store`` fixture to check
a plugin store. ``MemoryTrackingStore`` and ``MemoryRegistryStore`` are the reference stores the
suites also run against, besides the built-in SQL stores. Importing this package needs pytest.
"""

from __future__ import annotations

from mlgrid.testing.memory_registry_store import MemoryRegistryStore
from mlgrid.testing.memory_tracking_store import MemoryTrackingStore
from mlgrid.testing.registry_store_contract import RegistryStoreContract
from mlgrid.testing.tracking_store_contract import TrackingStoreContract

__all__ = [
    "MemoryRegistryStore",
    "MemoryTrackingStore",
    "RegistryStoreContract",
    "TrackingStoreContract",
]
