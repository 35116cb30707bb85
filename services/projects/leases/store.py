"""Run leases: which replica of the projects service owns each active run, in a database every
replica reaches.

A backend records a run it starts (:meth:`LeaseStore.record`): a lease row owned by this
instance, expiring one lease period later. The owner renews all its leases on every heartbeat
(:meth:`LeaseStore.heartbeat`). Another replica that finds a lease expired -- or, on the same
host, owned by a process that is gone -- takes it over (:meth:`LeaseStore.take_over`) with one
compare-and-set UPDATE that matches only the row as it saw it, so of several replicas trying at
once exactly one wins. An owner that finds at its next heartbeat that a lease is no longer its
own has lost the run to another replica.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mlgrid.projects.backend import OwnedHandle
from mlgrid_services.common.sql import make_engine, upgrade_database, write_transaction
from mlgrid_services.common.sql_dialect import insert_ignore

from ..process import host_id, process_start_time
from .schema import leases

log = logging.getLogger(__name__)

__all__ = ["VERSION_TABLE", "Lease", "LeaseStore"]

VERSION_TABLE = "alembic_version_projects"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"

#: Service instances alive in this process (an embedded stack may be restarted in-process, so a
#: lease owned by this very pid is not necessarily owned by a live instance).
_LIVE_INSTANCES: set[str] = set()


def _now_ms() -> int:
    return int(time.time() * 1000)


def scope_of(store_uri: str) -> str:
    """The lease scope of a tracking store: a digest, so no credentials of the URI are stored."""
    return hashlib.sha256(store_uri.encode()).hexdigest()


@dataclass(frozen=True)
class Lease:
    """One lease row as read."""

    run_id: str
    owner: str
    owner_host: str
    owner_pid: int
    owner_start: str | None
    backend: str
    owner_address: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    expires_ms: int = 0
    cancel_requested: bool = False

    @property
    def handle(self) -> OwnedHandle:
        return OwnedHandle(self.run_id, self.backend, dict(self.details))

    @classmethod
    def from_row(cls, row: Any) -> Lease:
        try:
            details = json.loads(row.details)
        except ValueError:
            details = {}
        return cls(
            run_id=row.run_id,
            owner=row.owner,
            owner_host=row.owner_host,
            owner_pid=row.owner_pid,
            owner_start=row.owner_start,
            backend=row.backend,
            owner_address=row.owner_address,
            details=details if isinstance(details, dict) else {},
            expires_ms=row.expires_ms,
            cancel_requested=bool(row.cancel_requested),
        )


class LeaseStore:
    """The leases of one projects service instance, in the database at ``uri``."""

    def __init__(self, uri: str, store_uri: str, period: float) -> None:
        # Few connections: a heartbeat and the occasional record or forget.
        self.engine = make_engine(uri, pool_size=2, max_overflow=6)
        # A database already at the newest migration is not handed to Alembic (sql.py).
        upgrade_database(self.engine, MIGRATIONS, VERSION_TABLE)
        self.scope = scope_of(store_uri)
        self.period = period
        self.instance = uuid.uuid4().hex
        self.host = host_id()
        self.pid = os.getpid()
        self.start = process_start_time(self.pid)
        #: host:port other replicas reach this one at (set once the server is bound).
        self.address: str | None = None
        #: Runs this instance holds a lease on (recorded or taken over, not yet forgotten).
        self._held: set[str] = set()
        self._lock = threading.Lock()
        _LIVE_INSTANCES.add(self.instance)

    def close(self) -> None:
        _LIVE_INSTANCES.discard(self.instance)
        self.engine.dispose()

    def release(self) -> None:
        """Lets go of every lease still held (runs left going on, e.g. Jobs in a cluster, when
        the service stops): they expire now, and another replica takes them over at its next
        heartbeat instead of a lease period later."""
        if not self.held():
            return
        with write_transaction(self.engine) as conn:
            conn.execute(
                leases.update().where(leases.c.owner == self.instance).values(expires_ms=0)
            )
        with self._lock:
            self._held.clear()

    def _expiry(self) -> int:
        return _now_ms() + int(self.period * 1000)

    def _owner_columns(self) -> dict[str, Any]:
        return {
            "owner": self.instance,
            "owner_host": self.host,
            "owner_pid": self.pid,
            "owner_start": self.start,
            "owner_address": self.address,
            "expires_ms": self._expiry(),
        }

    # -- the owner's side -----------------------------------------------------------------

    def record(self, handle: OwnedHandle) -> None:
        """Records (or updates) the lease of ``handle.run_id`` as this instance's. A lease
        another replica has taken over meanwhile stays theirs."""
        details = json.dumps(handle.details)
        with write_transaction(self.engine) as conn:
            updated = conn.execute(
                leases.update()
                .where(leases.c.run_id == handle.run_id, leases.c.owner == self.instance)
                .values(backend=handle.backend, details=details, expires_ms=self._expiry())
            ).rowcount
            if not updated:
                inserted = conn.execute(
                    insert_ignore(conn.dialect.name, leases).values(
                        run_id=handle.run_id,
                        scope=self.scope,
                        backend=handle.backend,
                        details=details,
                        cancel_requested=False,
                        **self._owner_columns(),
                    )
                ).rowcount
                if not inserted:
                    log.warning("run %s is leased by another replica", handle.run_id)
                    return
        with self._lock:
            self._held.add(handle.run_id)

    def forget(self, run_id: str) -> None:
        """Drops this instance's lease of a run that has ended."""
        with write_transaction(self.engine) as conn:
            conn.execute(
                leases.delete().where(leases.c.run_id == run_id, leases.c.owner == self.instance)
            )
        with self._lock:
            self._held.discard(run_id)

    def held(self) -> set[str]:
        with self._lock:
            return set(self._held)

    def heartbeat(self) -> tuple[set[str], set[str]]:
        """Renews every lease of this instance. Returns the runs whose lease another replica
        took over (lost), and the runs another replica was asked to cancel."""
        held = self.held()
        if not held:
            return set(), set()
        with write_transaction(self.engine) as conn:
            conn.execute(
                leases.update()
                .where(leases.c.owner == self.instance)
                .values(expires_ms=self._expiry(), owner_address=self.address)
            )
            rows = conn.execute(
                sa.select(leases.c.run_id, leases.c.cancel_requested).where(
                    leases.c.owner == self.instance
                )
            ).all()
        owned = {row.run_id for row in rows}
        lost = held - owned
        with self._lock:
            self._held -= lost
        return lost, {row.run_id for row in rows if row.cancel_requested}

    def import_state_files(self, directory: Path, store_uri: str) -> None:
        """Turns the run records of a service before leases (``<run id>.json`` in the state
        directory, of this tracking store) into expired leases, so that the runs they name are
        taken over at the next heartbeat like those of a dead replica."""
        for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
            try:
                record = json.loads(path.read_text())
                if record.get("store_uri") != store_uri:
                    continue
                row = {
                    "run_id": str(record["run_id"])[:64],
                    "scope": self.scope,
                    "owner": "before-leases",
                    "owner_host": "",
                    "owner_pid": int(record.get("owner_pid") or 0),
                    "owner_start": record.get("owner_start"),
                    "backend": str(record.get("backend") or "local")[:200],
                    "details": json.dumps(record.get("details") or {}),
                    "expires_ms": 0,
                    "cancel_requested": False,
                }
            except (OSError, ValueError, TypeError, KeyError):
                log.warning("ignoring unreadable projects state file %s", path)
                continue
            with write_transaction(self.engine) as conn:
                conn.execute(insert_ignore(conn.dialect.name, leases).values(**row))
            path.unlink(missing_ok=True)
            log.warning("run %s recorded before leases: to be taken over", row["run_id"])

    def import_leases(self, uri: str) -> None:
        """Moves this scope's leases out of another lease database (the one file every SQLite
        stack of a user shared before leases were kept per tracking store), as they are: a
        lease whose owner is gone is then taken over here like any other."""
        source = make_engine(uri, pool_size=1, max_overflow=0)
        try:
            with write_transaction(source) as conn:
                if not sa.inspect(conn).has_table(leases.name):
                    return
                rows = conn.execute(sa.select(leases).where(leases.c.scope == self.scope)).all()
                if rows:
                    with write_transaction(self.engine) as ours:
                        ours.execute(
                            insert_ignore(ours.dialect.name, leases),
                            [row._asdict() for row in rows],
                        )
                    conn.execute(leases.delete().where(leases.c.scope == self.scope))
        finally:
            source.dispose()
        for row in rows:
            log.warning("run %s: lease moved here from %s", row.run_id, uri)

    # -- any replica's side ---------------------------------------------------------------

    def claimable(self) -> list[Lease]:
        """Leases of this scope whose owner is gone: expired, or held by a process of this
        host that no longer exists."""
        now = _now_ms()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(leases)
                .where(
                    leases.c.scope == self.scope,
                    leases.c.owner != self.instance,
                    sa.or_(leases.c.expires_ms < now, leases.c.owner_host == self.host),
                )
                .order_by(leases.c.expires_ms)
            ).all()
        found = [Lease.from_row(row) for row in rows]
        return [lease for lease in found if lease.expires_ms < now or not self._owner_alive(lease)]

    def _owner_alive(self, lease: Lease) -> bool:
        """Whether the owner of a lease of this host still runs."""
        if lease.owner_pid == self.pid:
            return lease.owner in _LIVE_INSTANCES
        started = process_start_time(lease.owner_pid)
        return started is not None and started == lease.owner_start

    def take_over(self, lease: Lease) -> bool:
        """Makes ``lease`` this instance's if it is still exactly as read (no renewal, no other
        taker in between); True if this instance won it."""
        condition = [
            leases.c.run_id == lease.run_id,
            leases.c.owner == lease.owner,
            leases.c.expires_ms == lease.expires_ms,
        ]
        if lease.owner_host != self.host:
            # Only an expired lease: the owner's liveness cannot be seen from here.
            condition.append(leases.c.expires_ms < _now_ms())
        with write_transaction(self.engine) as conn:
            won = conn.execute(
                leases.update().where(*condition).values(**self._owner_columns())
            ).rowcount
        if won:
            with self._lock:
                self._held.add(lease.run_id)
        return bool(won)

    def lease_of(self, run_id: str) -> Lease | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(leases).where(leases.c.run_id == run_id)).first()
        return Lease.from_row(row) if row is not None else None

    def request_cancel(self, run_id: str) -> bool:
        """Asks the owner of ``run_id`` to cancel it at its next heartbeat; False: no lease."""
        with write_transaction(self.engine) as conn:
            return bool(
                conn.execute(
                    leases.update().where(leases.c.run_id == run_id).values(cancel_requested=True)
                ).rowcount
            )
