"""What survives the projects service: the runs it owns, one small JSON file each.

A service that dies (OOM, SIGKILL, power loss) cannot mark its runs FAILED. Each active run is
recorded in ``<state_dir>/<run_id>.json`` with the owner's pid (and start time, so a reused pid
is not mistaken for it) and the child's process group; the next service to start on the same
tracking store finds records whose owner is gone, kills a leftover child group and marks the
run FAILED.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from .process import process_start_time

log = logging.getLogger(__name__)

__all__ = ["OwnedRun", "RunStateStore", "default_state_dir"]

#: Service instances alive in this process (an embedded stack may be restarted in-process).
_LIVE_INSTANCES: set[str] = set()


def default_state_dir() -> Path:
    """``MLGRID_PROJECTS_STATE_DIR``, else ``~/.mlgrid/projects``."""
    raw = os.environ.get("MLGRID_PROJECTS_STATE_DIR")
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
    child_pid: int | None = None
    child_start: str | None = None


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

    def record(
        self, run_id: str, child_pid: int | None = None, child_start: str | None = None
    ) -> None:
        pid = os.getpid()
        owned = OwnedRun(
            run_id=run_id,
            store_uri=self.store_uri,
            owner_pid=pid,
            owner_start=process_start_time(pid),
            owner_instance=self.instance,
            child_pid=child_pid,
            child_start=child_start,
        )
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
                owned = OwnedRun(**json.loads(path.read_text()))
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


def kill_leftover_child(owned: OwnedRun) -> bool:
    """Kills the child process group of an orphaned run if it still runs; True if it did."""
    if owned.child_pid is None:
        return False
    started = process_start_time(owned.child_pid)
    if started is None or started != owned.child_start:
        return False
    try:
        os.killpg(owned.child_pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True
