"""The per-call auth caches (services/common/auth/ttl_cache.py): a value is reused for its
time, concurrent callers of a stale key share one read, errors are never kept, and a clear()
wins over a read that was under way when it ran."""

from __future__ import annotations

import threading
import time

import pytest

from mlgrid.exceptions import Unauthenticated
from mlgrid_services.common.auth.ttl_cache import TtlCache


def test_a_value_is_reused_for_its_time_then_read_again_with_the_stale_one_at_hand() -> None:
    cache: TtlCache[str, int] = TtlCache(ttl=0.2, limit=10)
    seen: list[int | None] = []

    def load(stale: int | None) -> int:
        seen.append(stale)
        return len(seen)

    assert cache.get("k", load) == 1
    assert cache.get("k", load) == 1
    time.sleep(0.25)
    assert cache.get("k", load) == 2
    assert seen == [None, 1]  # the second read got the first value (a Basic hash to compare)


def test_concurrent_callers_of_a_stale_key_share_one_read() -> None:
    cache: TtlCache[str, str] = TtlCache(ttl=5.0, limit=10)
    reads = 0
    release = threading.Event()

    def load(_stale: str | None) -> str:
        nonlocal reads
        reads += 1
        release.wait(10)  # a slow store: every other caller arrives meanwhile
        return "view"

    got: list[str] = []
    callers = [
        threading.Thread(target=lambda: got.append(cache.get("alice", load))) for _ in range(8)
    ]
    for caller in callers:
        caller.start()
    time.sleep(0.2)
    release.set()
    for caller in callers:
        caller.join(10)
    assert got == ["view"] * 8
    assert reads == 1


def test_an_error_reaches_every_waiting_caller_and_is_not_kept() -> None:
    cache: TtlCache[str, str] = TtlCache(ttl=5.0, limit=10)
    release = threading.Event()
    attempts = 0

    def refuse(_stale: str | None) -> str:
        nonlocal attempts
        attempts += 1
        release.wait(10)
        raise Unauthenticated("the access token is not valid")

    errors: list[str] = []

    def call() -> None:
        try:
            cache.get("token", refuse)
        except Unauthenticated as exc:
            errors.append(exc.message)

    callers = [threading.Thread(target=call) for _ in range(4)]
    for caller in callers:
        caller.start()
    time.sleep(0.2)
    release.set()
    for caller in callers:
        caller.join(10)
    assert errors == ["the access token is not valid"] * 4
    assert attempts == 1
    with pytest.raises(Unauthenticated):
        cache.get("token", refuse)  # read again: a failure is never cached
    assert attempts == 2


def test_a_read_under_way_when_the_cache_is_cleared_is_not_kept() -> None:
    # A grant changed through this process clears the caches while a call is reading the old
    # grants: the next call must read again, not reuse what that read found.
    cache: TtlCache[str, str] = TtlCache(ttl=60.0, limit=10)
    reading = threading.Event()
    release = threading.Event()

    def old_grants(_stale: str | None) -> str:
        reading.set()
        release.wait(10)
        return "EDIT"

    caller = threading.Thread(target=lambda: cache.get("alice", old_grants))
    caller.start()
    assert reading.wait(10)
    cache.clear()
    release.set()
    caller.join(10)
    assert cache.get("alice", lambda _stale: "READ") == "READ"


def test_a_full_cache_starts_again_rather_than_growing() -> None:
    cache: TtlCache[int, int] = TtlCache(ttl=60.0, limit=3)
    for key in range(3):
        cache.get(key, lambda _stale, key=key: key)
    cache.get(3, lambda _stale: 3)  # clears, then keeps 3
    assert cache.get(0, lambda _stale: -1) == -1
