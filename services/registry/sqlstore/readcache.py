"""A coherent cache of model-version reads (get by alias, get by number), PostgreSQL only.

Why: once the statement is one round trip (pgfast), the round trip itself and PostgreSQL's CPU
are most of what is left of a get-by-alias; a deployment resolves the same alias over and over.

What it guarantees:

- Writes through this process are never missed. Every write of the store runs inside
  :meth:`ReadCache.writing`, which empties the cache and moves its generation on both before the
  write starts and after it ends (committed or not). A read keeps what it fetched only if no write
  was under way when it began and the generation has not moved when it ends, so a value read
  before a write committed can never be stored after it. Once a write has returned, no read in this
  process answers with what was there before.
- Writes by other processes (another registry replica, an operator's SQL): a trigger on the
  registry tables (migration r0002) notifies at commit, and the change feed (changefeed.py) empties
  the cache when the notification arrives; each hit first applies notifications already received.
  Such a write is seen here once PostgreSQL has delivered its notification, normally well under a
  millisecond after the commit; a read that reaches this process inside that window can still
  answer with the value from before the write.
- While the change feed is not listening (not connected yet, connection lost, triggers missing),
  nothing is stored and nothing is served from the cache: every read goes to the database.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager

from mlgrid.api.registry.v1 import registry_pb2

#: Entries kept at most; the oldest go first (the working set is a few aliases per model).
MAX_ENTRIES = 4096


class ReadCache:
    """Model versions by key, dropped whole on any change (writes are rare next to reads)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: dict[Hashable, registry_pb2.ModelVersion] = {}
        self._lock = threading.Lock()
        self._max_entries = max_entries
        self._generation = 0
        self._writes = 0  # writes of this process under way
        self._enabled = False
        #: Lookups answered from the cache (for tests and diagnostics).
        self.hits = 0
        #: Applies change notifications already received; set by the change feed.
        self.poll: Callable[[], None] = lambda: None

    @property
    def enabled(self) -> bool:
        return self._enabled

    def lookup(self, key: Hashable) -> tuple[registry_pb2.ModelVersion | None, int | None]:
        """(a copy of the cached entity, None) on a hit; on a miss (None, token), where token
        (None when the result must not be kept) goes to :meth:`store` with what was read."""
        self.poll()
        with self._lock:
            if not self._enabled:
                return None, None
            cached = self._entries.get(key)
            if cached is None:
                return None, (self._generation if self._writes == 0 else None)
            self.hits += 1
        # Callers own what they get: a copy, so nothing they do can reach the cache.
        copy = registry_pb2.ModelVersion()
        copy.CopyFrom(cached)
        return copy, None

    def store(self, key: Hashable, token: int | None, entity: registry_pb2.ModelVersion) -> None:
        """Keeps ``entity`` under ``key`` unless anything changed since :meth:`lookup` gave
        ``token``."""
        if token is None:
            return
        copy = registry_pb2.ModelVersion()
        copy.CopyFrom(entity)
        with self._lock:
            if not self._enabled or token != self._generation or self._writes:
                return
            if len(self._entries) >= self._max_entries:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = copy

    def changed(self) -> None:
        """Something may have changed: forget everything, and refuse reads already under way."""
        with self._lock:
            self._generation += 1
            self._entries.clear()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Wraps one write of this process (see the module docstring)."""
        with self._lock:
            self._writes += 1
            self._generation += 1
            self._entries.clear()
        try:
            yield
        finally:
            with self._lock:
                self._writes -= 1
                self._generation += 1
                self._entries.clear()

    def forget_inherited(self) -> None:
        """In a forked child (services/common/fork_safety.py): off and empty, with a lock of
        its own (a thread of the parent may have held this one at the fork) and none of the
        parent's writes under way."""
        self._lock = threading.Lock()
        self._writes = 0
        self._enabled = False
        self._generation += 1
        self._entries.clear()

    def set_enabled(self, enabled: bool) -> None:
        """On while the change feed listens. Either way the cache starts empty: notifications
        may have been missed while it was off."""
        with self._lock:
            self._enabled = enabled
            self._generation += 1
            self._entries.clear()
