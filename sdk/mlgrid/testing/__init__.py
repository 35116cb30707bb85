"""Test suites and reference implementations for people who build on mlgrid's interfaces.

``TrackingStoreContract`` is the abstract tracking store's promises as pytest tests: subclass it
and provide a ``tracking_store`` fixture to check a plugin store. ``MemoryTrackingStore`` is the
reference store the suite is also run against. Importing this package needs pytest.
"""

from __future__ import annotations

from mlgrid.testing.memory_tracking_store import MemoryTrackingStore
from mlgrid.testing.tracking_store_contract import TrackingStoreContract

__all__ = ["MemoryTrackingStore", "TrackingStoreContract"]
