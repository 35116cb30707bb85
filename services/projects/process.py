"""A project's child process: started in its own session, output copied to the run's log.

``start_new_session`` makes the child the leader of a new process group, so cancelling
reaches everything it started (a shell, python, its workers) with one ``killpg``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from mlgrid.exceptions import InvalidParameterValue

from .logbuffer import LogBuffer
from .run_limits import RunLimits, RunUser

__all__ = ["ChildProcess", "host_id", "kill_leftover_group", "process_start_time"]

_READ_SIZE = 64 * 1024


def process_start_time(pid: int) -> str | None:
    """The start time of ``pid`` (clock ticks since boot, from /proc), or None if it is gone.

    Stored with pids so that a reused pid is not mistaken for the process that was recorded.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return "?"
        return "?"  # no /proc: liveness only
    # The command name (field 2) may contain spaces; fields after the last ")" are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if len(fields) > 19 else "?"


def host_id() -> str:
    """This host as pids are valid on it: its name and boot id (a pid recorded before a reboot,
    or in another container's pid namespace, names no process here)."""
    import socket

    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = "?"
    return f"{socket.gethostname()[:200]}/{boot}"


def kill_leftover_group(details: dict[str, object]) -> bool:
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


def _switch_user(user: RunUser) -> list[str]:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise InvalidParameterValue(
            f"runs execute as user {user.name!r} (MLGRID_PROJECTS_RUN_USER), which needs "
            "util-linux's setpriv on the projects service's host; install it, or set "
            "MLGRID_PROJECTS_RUN_USER to run as the service's user"
        )
    return [
        setpriv,
        f"--reuid={user.uid}",
        f"--regid={user.gid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--no-new-privs",  # setuid programs (sudo, su) cannot take the run back to root
        "--",
    ]


class ChildProcess:
    """One running command of a project run."""

    def __init__(
        self,
        command: str,
        cwd: Path,
        env: dict[str, str],
        log: LogBuffer,
        *,
        user: RunUser | None = None,
        limits: RunLimits | None = None,
    ) -> None:
        shell = shutil.which("bash") or "/bin/sh"
        self.started = time.monotonic()
        if limits is not None:
            command = limits.shell_prefix(shell) + command
        argv = [shell, "-c", command]
        if user is not None:
            # util-linux's setpriv switches the account right before the shell: Popen's own
            # user=/group= would do it between fork and exec in a child of this threaded
            # service, where glibc's set*id crashes now and then.
            argv = [*_switch_user(user), *argv]
        self._proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.pid = self._proc.pid
        self.start_time = process_start_time(self.pid)
        self._readers = [
            threading.Thread(
                target=self._copy, args=(self._proc.stdout, "stdout", log), daemon=True
            ),
            threading.Thread(
                target=self._copy, args=(self._proc.stderr, "stderr", log), daemon=True
            ),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _copy(pipe: object, stream: str, log: LogBuffer) -> None:
        fd = pipe.fileno()  # type: ignore[attr-defined]
        try:
            while True:
                data = os.read(fd, _READ_SIZE)  # returns as soon as anything was written
                if not data:
                    break
                log.append(stream, data)
        except OSError:
            pass
        finally:
            pipe.close()  # type: ignore[attr-defined]

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code (negative: killed by that signal), or None if still running."""
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def poll(self) -> int | None:
        return self._proc.poll()

    def join_output(self, timeout: float = 5.0) -> None:
        """Waits for the output to be copied (a grandchild holding the pipes may delay EOF)."""
        deadline = time.monotonic() + timeout
        for reader in self._readers:
            reader.join(max(0.0, deadline - time.monotonic()))

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def terminate(self, grace: float) -> None:
        """SIGTERM to the process group, SIGKILL to what is left after ``grace`` seconds."""
        self.signal_group(signal.SIGTERM)
        self.wait(grace)
        # Also reaches grandchildren that outlived the leader or ignored SIGTERM.
        self.signal_group(signal.SIGKILL)
        self.wait(5.0)
