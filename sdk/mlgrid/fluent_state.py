"""What the fluent API remembers between calls, in one object (``mlgrid.fluent.state``).

As in MLflow: the experiment chosen by ``set_experiment`` (for every thread), a per-thread stack
of active runs (nested runs push onto it) and the run this thread ended last, and one client per
(tracking, registry) URI pair, shared so that its background logger is too. The fluent modules
(runs, experiments, searches, artifacts, models, the registry) all read and change the state
through this object, never through each other's module globals.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from mlgrid.client import Client
from mlgrid.tracking_uri import get_registry_uri, get_tracking_uri

if TYPE_CHECKING:
    from mlgrid.fluent import ActiveRun


class FluentState:
    """The fluent API's state: the chosen experiment, active runs, the last run, the clients."""

    def __init__(self) -> None:
        #: The experiment ``set_experiment`` chose; None: the environment's, else "0".
        self.experiment_id: str | None = None
        self._thread = threading.local()
        self._clients: dict[tuple[str, str], Client] = {}
        self._clients_lock = threading.Lock()

    def client(self) -> Client:
        """The client for the current tracking and registry URIs (one per pair, shared)."""
        key = (get_tracking_uri(), get_registry_uri())
        with self._clients_lock:
            client = self._clients.get(key)
            if client is None:
                client = Client(key[0], key[1] if key[1] != key[0] else None)
                self._clients[key] = client
            return client

    @property
    def runs(self) -> list[ActiveRun]:
        """This thread's active runs, innermost last."""
        runs: list[ActiveRun] | None = getattr(self._thread, "runs", None)
        if runs is None:
            runs = self._thread.runs = []
        return runs

    @property
    def last_run_id(self) -> str | None:
        """The run this thread ended most recently."""
        return getattr(self._thread, "last_run_id", None)

    @last_run_id.setter
    def last_run_id(self, run_id: str | None) -> None:
        self._thread.last_run_id = run_id

    def forget(self) -> None:
        """Forgets this thread's runs (without ending them), its last run and the chosen
        experiment: a fresh start, for tests and notebooks."""
        self.runs.clear()
        self.last_run_id = None
        self.experiment_id = None
