"""The projects service's run leases: table, migrations and store (see store.py)."""

from .store import VERSION_TABLE, Lease, LeaseStore, scope_of

__all__ = ["VERSION_TABLE", "Lease", "LeaseStore", "scope_of"]
