"""List-then-watch of one kind of object, as Kubernetes documents it ("efficient detection").

A list gives the current objects and a ``resourceVersion``; a watch from that version gives
every later change. A watch ends now and then (its ``timeoutSeconds``, a dropped connection):
it is resumed from the last version seen. When that version has expired (``410 Gone``) the
objects are listed again. Nothing is polled: between changes the watch simply waits.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

__all__ = ["Change", "ResourceWatch"]

log = logging.getLogger(__name__)

#: Seconds a single watch request lasts before it is resumed (server side).
WATCH_SECONDS = 60
#: Longest wait between attempts while the API server cannot be reached.
_MAX_BACKOFF = 30.0
_READ_BYTES = 64 * 1024


@dataclass(frozen=True)
class Change:
    """One event: ``kind`` is "SYNC" (``items`` is everything now), "ADDED", "MODIFIED" or
    "DELETED" (``item`` is the object)."""

    kind: str
    item: Any = None
    items: tuple[Any, ...] = ()


class _Body:
    """What older clients' ``ApiClient.deserialize`` reads (a response with ``data``)."""

    def __init__(self, data: str) -> None:
        self.data = data


class ResourceWatch:
    """Changes of the objects a list call returns, until :meth:`stop`.

    The watch request is made and read here (``watch=true``, one JSON event per line) rather
    than through ``kubernetes.watch.Watch``, so that :meth:`stop` can always cut it at once:
    the open response is known from the moment it exists.
    """

    def __init__(
        self,
        api: Any,
        list_call: Callable[..., Any],
        item_type: str,
        namespace: str,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        on_unreachable: Callable[[Exception], None] | None = None,
    ) -> None:
        self._api = api
        self._list = list_call
        self._item_type = item_type
        self._namespace = namespace
        self._selectors: dict[str, str] = {}
        if label_selector:
            self._selectors["label_selector"] = label_selector
        if field_selector:
            self._selectors["field_selector"] = field_selector
        self._on_unreachable = on_unreachable or (lambda exc: None)
        self._stopped = threading.Event()
        self._response: Any = None
        self._lock = threading.Lock()

    def stop(self) -> None:
        """Ends :meth:`changes` (from any thread; an open watch is cut)."""
        self._stopped.set()
        with self._lock:
            response = self._response
        if response is not None:
            _cut(response)

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def changes(self) -> Iterator[Change]:
        version: str | None = None
        backoff = 0.5
        while not self._stopped.is_set():
            try:
                if version is None:
                    listing = self._list(self._namespace, **self._selectors, _request_timeout=30)
                    version = listing.metadata.resource_version
                    yield Change("SYNC", items=tuple(listing.items))
                for kind, item, seen in self._watch(version):
                    version = seen  # a resumed watch starts after the last change seen
                    yield Change(kind, item=item)
                backoff = 0.5
            except ApiException as exc:
                if exc.status == 410:
                    version = None  # expired: list again
                    continue
                if exc.status in (401, 403, 404):
                    raise
                self._pause(exc, backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                self._pause(exc, backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)

    def _pause(self, exc: Exception, seconds: float) -> None:
        if self._stopped.is_set():
            return
        log.warning("watch of %s interrupted (%s); resuming", self._namespace, exc)
        self._on_unreachable(exc)
        self._stopped.wait(seconds)

    def _model(self, raw: dict[str, Any]) -> Any:
        text = json.dumps(raw)
        try:
            return self._api.deserialize(text, self._item_type, "application/json")
        except TypeError:  # clients before 35: deserialize(response, type)
            return self._api.deserialize(_Body(text), self._item_type)

    def _watch(self, version: str) -> Iterator[tuple[str, Any, str]]:
        response = self._list(
            self._namespace,
            watch=True,
            resource_version=version,
            timeout_seconds=WATCH_SECONDS,
            allow_watch_bookmarks=True,
            _preload_content=False,
            _request_timeout=(10.0, WATCH_SECONDS + 30.0),
            **self._selectors,
        )
        with self._lock:
            if self._stopped.is_set():
                _cut(response)
                return
            self._response = response
        try:
            for line in _lines(response):
                event = json.loads(line)
                kind, raw = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    raise ApiException(
                        status=int(raw.get("code") or 500), reason=str(raw.get("message"))
                    )
                version = (raw.get("metadata") or {}).get("resourceVersion") or version
                if kind != "BOOKMARK":
                    yield str(kind), self._model(raw), version
                if self._stopped.is_set():
                    return
        finally:
            with self._lock:
                self._response = None
            _cut(response)


def _lines(response: Any) -> Iterator[str]:
    """The response body's lines, as they arrive."""
    pending = b""
    for data in response.stream(_READ_BYTES, decode_content=True):
        pending += data
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line.strip():
                yield line.decode("utf-8", errors="replace")
    if pending.strip():
        yield pending.decode("utf-8", errors="replace")


def _cut(response: Any) -> None:
    """Closes a streamed response, unblocking a thread reading it."""
    with contextlib.suppress(Exception):
        if hasattr(response, "shutdown"):
            response.shutdown()
    with contextlib.suppress(Exception):
        response.close()
    with contextlib.suppress(Exception):
        response.release_conn()
