"""The run-lease store on each database it runs on: an owner renews and forgets its leases; an
expired lease is taken over by exactly one of several replicas racing for it; the loser (and
the stalled owner) learn they lost it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlgrid.projects.backend import OwnedHandle
from mlgrid_services.projects.leases import LeaseStore

STORE = "sqlite:///tracking.db"
#: Short enough to expire within a test.
PERIOD = 0.5


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def lease_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'leases.db'}"
    return str(request.getfixturevalue(f"fresh_{request.param}_url"))


@pytest.fixture
def replicas(lease_db: str) -> Iterator[list[LeaseStore]]:
    stores = [LeaseStore(lease_db, STORE, PERIOD) for _ in range(4)]
    yield stores
    for store in stores:
        store.close()


def test_the_owner_renews_and_forgets_its_lease(replicas: list[LeaseStore]) -> None:
    owner, other = replicas[:2]
    owner.record(OwnedHandle("r1", "docker", {"container": "abc"}))
    lease = other.lease_of("r1")
    assert lease is not None and lease.owner == owner.instance
    assert lease.handle == OwnedHandle("r1", "docker", {"container": "abc"})
    for _ in range(4):  # renewed past several periods: never claimable
        time.sleep(PERIOD / 2)
        assert owner.heartbeat() == (set(), set())
        assert [x.run_id for x in other.claimable()] == []
    # A replica on the same host sees the owner (this process, a live instance) as alive.
    assert other.lease_of("r1").owner_host == other.host  # type: ignore[union-attr]
    owner.forget("r1")
    assert other.lease_of("r1") is None


def test_an_expired_lease_goes_to_exactly_one_replica(replicas: list[LeaseStore]) -> None:
    owner, *takers = replicas
    owner.record(OwnedHandle("r2", "kubernetes", {"job": "j"}))
    time.sleep(PERIOD * 1.5)  # the owner stalls: no heartbeat
    seen = [taker.claimable() for taker in takers]
    assert all([lease.run_id for lease in found] == ["r2"] for found in seen)
    barrier = threading.Barrier(len(takers))
    won: list[LeaseStore] = []

    def race(taker: LeaseStore, lease) -> None:  # type: ignore[no-untyped-def]
        barrier.wait()
        if taker.take_over(lease):
            won.append(taker)

    threads = [
        threading.Thread(target=race, args=(t, found[0]))
        for t, found in zip(takers, seen, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    (winner,) = won
    assert owner.lease_of("r2").owner == winner.instance  # type: ignore[union-attr]
    # The stalled owner wakes up: its heartbeat says the run is lost; its late record of the
    # run does not take the lease back.
    assert owner.heartbeat() == ({"r2"}, set())
    owner.record(OwnedHandle("r2", "kubernetes", {"job": "j"}))
    assert owner.lease_of("r2").owner == winner.instance  # type: ignore[union-attr]
    owner.forget("r2")  # not its lease any more: nothing happens
    assert winner.lease_of("r2") is not None
    # The winner renews it; nobody else can claim it now.
    assert winner.heartbeat() == (set(), set())
    assert all(t.claimable() == [] for t in takers if t is not winner)


def test_a_cancel_asked_of_any_replica_reaches_the_owner(replicas: list[LeaseStore]) -> None:
    owner, other = replicas[:2]
    assert other.request_cancel("nobody-runs-this") is False
    owner.record(OwnedHandle("r3", "local", {}))
    assert other.request_cancel("r3") is True
    assert owner.heartbeat() == (set(), {"r3"})


def test_leases_of_another_tracking_store_are_left_alone(lease_db: str) -> None:
    mine = LeaseStore(lease_db, STORE, PERIOD)
    theirs = LeaseStore(lease_db, "postgresql://elsewhere/db", PERIOD)
    try:
        theirs.record(OwnedHandle("r4", "docker", {}))
        time.sleep(PERIOD * 1.5)
        assert mine.claimable() == []
        assert [lease.run_id for lease in theirs.claimable()] == []  # its own
    finally:
        mine.close()
        theirs.close()


def test_leases_released_by_a_stopping_replica_are_claimable_at_once(
    replicas: list[LeaseStore],
) -> None:
    owner, other = replicas[:2]
    owner.record(OwnedHandle("r5", "kubernetes", {"job": "j"}))
    owner.heartbeat()
    assert other.claimable() == []  # renewed, owner alive
    owner.release()
    (lease,) = other.claimable()
    assert other.take_over(lease)
    assert owner.lease_of("r5").owner == other.instance  # type: ignore[union-attr]
