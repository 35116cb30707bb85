"""Listens for PostgreSQL's change notifications of the registry tables and keeps a ReadCache
coherent with them (see readcache.py for the guarantees).

One connection of its own runs ``LISTEN``; a daemon thread sleeps on its socket and applies
notifications as they come, and readers apply the ones already received before each cache hit
(``ReadCache.poll``), so a hit never waits for this thread to be scheduled. Whenever the
connection is not listening, the cache is off; the thread reconnects every few seconds and turns
it back on, empty. TCP keepalives find a connection that died silently.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from collections.abc import Callable
from typing import Any

import psycopg

from mlgrid_services.common import fork_safety

from .readcache import ReadCache

log = logging.getLogger(__name__)

CONNECTION_OK = psycopg.pq.ConnStatus.OK

#: Must match the trigger function of migration r0002_change_notify.
CHANNEL = "mlgrid_registry_changed"
#: The tables whose triggers (migration r0002) notify; without all of them enabled some changes
#: would go unnoticed, so the cache stays off.
NOTIFYING_TABLES = (
    "registered_models",
    "model_versions",
    "model_version_tags",
    "registered_model_aliases",
)
_ENABLED_TRIGGERS = """
SELECT count(*) FROM unnest(%(tables)s::text[]) AS t(name)
JOIN pg_trigger g ON g.tgrelid = to_regclass(t.name) AND g.tgname = t.name || '_notify_change'
WHERE g.tgenabled IN ('O', 'A')
"""
RETRY_SECONDS = 2.0
#: How the listening connection shows in pg_stat_activity.
APPLICATION_NAME = "mlgrid-registry-changefeed"
#: Options of the listening connection; the keepalives find a peer that died silently within
#: about idle + interval * count seconds.
CONNECT_OPTIONS: dict[str, Any] = {
    "application_name": APPLICATION_NAME,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
}


class ChangeFeed:
    """Feeds ``cache`` from PostgreSQL notifications on :data:`CHANNEL`."""

    def __init__(self, connect: Callable[..., psycopg.Connection[Any]], cache: ReadCache) -> None:
        self._connect = connect
        self._cache = cache
        self._lock = threading.Lock()  # guards self._conn and the use of its libpq handle
        self._conn: psycopg.Connection[Any] | None = None
        self._stop = threading.Event()
        self._warned = False  # one warning per outage, not one per retry
        self._wake_reader, self._wake_writer = socket.socketpair()
        cache.poll = self.poll
        self._listen()  # at once, so the cache works from the first call
        self._thread = threading.Thread(target=self._run, name="registry-change-feed", daemon=True)
        self._thread.start()
        fork_safety.reset_in_child(self, ChangeFeed._forget_inherited)

    def _forget_inherited(self) -> None:
        """In a forked child: no thread listens for it, so its cache stays off (every read
        goes to the database); the parent's listening session is left to the parent."""
        self._lock = threading.Lock()
        self._conn = None
        self._stop.set()
        self._cache.forget_inherited()

    def _warn(self, message: str, *args: object) -> None:
        if not self._warned:
            log.warning("registry read cache off: " + message, *args)
            self._warned = True

    def _listen(self) -> bool:
        try:
            conn = self._connect(**CONNECT_OPTIONS)
        except psycopg.Error as exc:
            self._warn("cannot connect to listen for changes: %s", exc)
            return False
        try:
            row = conn.execute(_ENABLED_TRIGGERS, {"tables": list(NOTIFYING_TABLES)}).fetchone()
            if row is None or row[0] != len(NOTIFYING_TABLES):
                self._warn("change triggers missing or disabled (migration r0002_change_notify)")
                conn.close()
                return False
            conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            self._warn("LISTEN failed: %s", exc)
            conn.close()
            return False
        with self._lock:
            if self._stop.is_set():  # closed while connecting
                conn.close()
                return False
            self._conn = conn
        if self._warned:
            log.warning("registry read cache on again: listening for changes")
            self._warned = False
        # Changes committed before LISTEN took effect were never notified: start empty.
        self._cache.set_enabled(True)
        return True

    def poll(self) -> None:
        """Applies the notifications received so far; a lost connection turns the cache off."""
        with self._lock:
            conn = self._conn
            if conn is None:
                return
            pgconn = conn.pgconn
            notified = False
            try:
                pgconn.consume_input()  # non-blocking: libpq keeps its socket non-blocking
                while pgconn.notifies() is not None:
                    notified = True
                healthy = pgconn.status == CONNECTION_OK
            except psycopg.Error:
                healthy = False
            # Applied under the lock: a reader that polls after us must find the cache emptied.
            if not healthy:
                # The thread closes it; from now on every read goes to the database.
                self._conn = None
                self._cache.set_enabled(False)
            elif notified:
                self._cache.changed()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                conn = self._conn
            if conn is None:
                if not self._listen():
                    self._stop.wait(RETRY_SECONDS)
                continue
            with contextlib.suppress(OSError, ValueError, psycopg.Error):
                # A broken socket raises or wakes at once: poll() below notices either way.
                select.select([conn.pgconn.socket, self._wake_reader.fileno()], [], [])
            if self._stop.is_set():
                break
            self.poll()
            with self._lock:
                lost = self._conn is not conn
            if lost:
                self._warn("lost the connection listening for changes; reconnecting")
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._wake_writer.send(b"x")
        self._thread.join(timeout=5)
        with self._lock:
            conn, self._conn = self._conn, None
        self._cache.set_enabled(False)
        if conn is not None:
            conn.close()
        self._wake_reader.close()
        self._wake_writer.close()
