"""What survives the projects service: the runs it owns, one small JSON file each.

A service that dies (OOM, SIGKILL, power loss) cannot mark its runs FAILED. Each active run is
recorded in ``<state_dir>/<run_id>.json`` with the owner's pid (and start time, so a reused pid
is not mistaken for it), the backend that runs it and that backend's handle (a child process
group, a container, a Job); the next service to start on the same tracking store finds records
whose owner is gone and hands each to its backend's ``recover`` (which cleans up, or takes the
run over), marking the runs nobody takes over FAILED.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mlgrid import environment as env
from mlgrid.projects.backend import OwnedHandle

from .process import process_start_time

log = logging.getLogger(__name__)

__all__ = ["OwnedRun", "RunStateStore", "default_state_dir", "kill_leftover_group"]

#: Service instances alive in this process (an embedded stack may be restarted in-process).
_LIVE_INSTANCES: set[str] = set()


def default_state_dir() -> Path:
    """``MLGRID_PROJECTS_STATE_DIR``, else ``~/.mlgrid/projects``."""
    raw = env.MLGRID_PROJECTS_STATE_DIR.get()
    return Path(raw).expanduser() if raw else Path.home() / ".mlgrid" / "projects"


@dataclass
class OwnedRun:
    """The record of one active run."""

    run_id: str
    #: Store the run lives in (a restarted service only reconciles runs of its own store).
    store_uri: str
    owner_pid: int
    owner_start: str | None
    owner_instance: str
    #: The backend that runs it, and that backend's handle (see OwnedHandle.details).
    backend: str = "local"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def handle(self) -> OwnedHandle:
        return OwnedHandle(self.run_id, self.backend, dict(self.details))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OwnedRun:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class RunStateStore:
    """The state directory of one service instance."""

    def __init__(self, directory: Path, store_uri: str) -> None:
        self.directory = directory
        self.store_uri = store_uri
        self.instance = uuid.uuid4().hex
        self.directory.mkdir(parents=True, exist_ok=True)
        _LIVE_INSTANCES.add(self.instance)

    def close(self) -> None:
        _LIVE_INSTANCES.discard(self.instance)

    def _path(self, run_id: str) -> Path:
        return self.directory / f"{run_id}.json"

    def record(self, handle: OwnedHandle) -> None:
        """Records (or replaces) the record of ``handle.run_id``, owned by this instance."""
        pid = os.getpid()
        owned = OwnedRun(
            run_id=handle.run_id,
            store_uri=self.store_uri,
            owner_pid=pid,
            owner_start=process_start_time(pid),
            owner_instance=self.instance,
            backend=handle.backend,
            details=dict(handle.details),
        )
        run_id = handle.run_id
        tmp = self._path(run_id).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(owned)))
        os.replace(tmp, self._path(run_id))  # readers never see half a record

    def forget(self, run_id: str) -> None:
        self._path(run_id).unlink(missing_ok=True)

    def orphans(self) -> list[OwnedRun]:
        """Records of this store whose owning service is gone."""
        found = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                owned = OwnedRun.from_json(json.loads(path.read_text()))
            except (OSError, ValueError, TypeError):
                log.warning("ignoring unreadable projects state file %s", path)
                continue
            if owned.store_uri == self.store_uri and not _owner_alive(owned):
                found.append(owned)
        return found


def _owner_alive(owned: OwnedRun) -> bool:
    if owned.owner_pid == os.getpid():
        return owned.owner_instance in _LIVE_INSTANCES
    started = process_start_time(owned.owner_pid)
    return started is not None and started == owned.owner_start


def kill_leftover_group(details: dict[str, Any]) -> bool:
    """Kills the process group ``details["pid"]`` if it is still the one recorded (same start
    time, so a reused pid is spared); True if it did."""
    pid, recorded_start = details.get("pid"), details.get("start")
    if not isinstance(pid, int):
        return False
    started = process_start_time(pid)
    if started is None or started != recorded_start:
        return False
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True
