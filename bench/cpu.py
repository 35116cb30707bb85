"""CPU seconds spent by the client and by a server's process tree (Linux ``/proc``; standard
library only, as the worker runs in MLflow's venv too).

Wall-clock rates on a machine shared with other work swing by 2-3x from one minute to the next
(mostly the shared disk's flush time); the CPU a phase costs moves far less, so the auth table
sets the CPU of auth on beside auth off as well (docs/benchmarks.md, "Auth on and off").
"""

from __future__ import annotations

import os
from pathlib import Path

_PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after its closing one.
    return text.rsplit(")", 1)[1].split()


def _tree(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, ()))
    return found


def tree_seconds(root: int) -> float:
    """User + system CPU seconds of ``root`` and its descendants, those still running and those
    their parents reaped (a restarted service), 0.0 without /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in _tree(root) if _PROC.is_dir() else ():
        fields = _stat_fields(pid)
        if fields is not None:
            # utime, stime, cutime, cstime: fields 14 to 17 of stat(5), the last two the CPU
            # of its reaped children (counted nowhere else once they are gone).
            total += sum(int(f) for f in fields[11:15])
    return total / ticks


def own_seconds() -> float:
    """User + system CPU seconds of this process and of its children that have ended."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system
