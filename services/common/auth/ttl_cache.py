"""What the per-call auth path remembers: a value read from the auth store, reused for ``ttl``
seconds, read again after that.

Concurrent calls that find one key stale share one read (single flight): when the entry of a
busy caller expires, its 8 concurrent calls used to run 8 identical store reads (~8 queries
each) at once, which on a loaded machine was most of what auth cost them. A call that waits
for another's read gets a value read after that call arrived (the read starts only once the
entry is stale), so a change is still seen by every call starting ``ttl`` seconds after it.

:meth:`TtlCache.clear` (a change made through this process) also makes reads under way when
it ran unable to store their result, and sends later callers to a new read: nothing read
before a change is reused after it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Flight(Generic[V]):
    """One read under way, and what the calls waiting for it get."""

    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: V | None = None
        self.error: BaseException | None = None


class TtlCache(Generic[K, V]):
    """key -> value, each read by its caller's ``load`` and kept ``ttl`` seconds."""

    def __init__(self, ttl: float, limit: int) -> None:
        self._ttl = ttl
        self._limit = limit
        self._lock = threading.Lock()
        #: key -> (value, when its read started)
        self._entries: dict[K, tuple[V, float]] = {}
        self._flights: dict[K, _Flight[V]] = {}
        #: Bumped by clear(): a read started before it must not store its result.
        self._generation = 0

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._flights.clear()
            self._generation += 1

    def get(self, key: K, load: Callable[[V | None], V]) -> V:
        """The value of ``key``: the cached one while fresh, else ``load(stale value or
        None)``'s, read once for every caller that needs it meanwhile. An error ``load``
        raises is raised to each of them and never cached."""
        entry = self._entries.get(key)  # the common case: a dict read, no lock
        if entry is not None and time.monotonic() - entry[1] < self._ttl:
            return entry[0]
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and time.monotonic() - entry[1] < self._ttl:
                return entry[0]  # read by another call while this one took the lock
            flight = self._flights.get(key)
            leading = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
            generation = self._generation
        if not leading:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.value  # type: ignore[return-value]
        started = time.monotonic()
        try:
            value = load(entry[0] if entry is not None else None)
        except BaseException as exc:
            flight.error = exc
            raise
        else:
            flight.value = value
            with self._lock:
                if generation == self._generation:
                    if len(self._entries) >= self._limit:
                        self._entries.clear()  # each is one read away; no LRU bookkeeping
                    self._entries[key] = (value, started)
            return value
        finally:
            with self._lock:
                if self._flights.get(key) is flight:
                    del self._flights[key]
            flight.done.set()
