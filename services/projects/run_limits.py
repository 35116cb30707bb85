"""What a local run may use: the user it runs as and its resource limits, as policy.

A local run executes a client's command on the service's host, so it gets less than the
service: when the service runs as root the command runs as ``MLGRID_PROJECTS_RUN_USER``
(``nobody`` by default), and every process of it gets kernel limits (``ulimit``, soft and hard) that the
command cannot raise back:

- CPU seconds (``RLIMIT_CPU``): the kernel sends SIGXCPU (SIGKILL two seconds on);
- address space (``RLIMIT_AS``): allocations beyond it fail (``MemoryError`` in Python);
- bytes per file (``RLIMIT_FSIZE``): writes beyond it fail (SIGXFSZ, or ``EFBIG`` in Python);

and the supervisor enforces what no rlimit covers: the wall-clock time, and the bytes held in
the working copy (checked while the run goes and when it ends). When a run fails this module
says which limit stopped it, naming the setting, from evidence the service has: the signal,
the working copy's size, the elapsed time, and for memory the error the run printed last.
"""

from __future__ import annotations

import os
import pwd
import signal
import stat
from dataclasses import dataclass
from pathlib import Path

from mlgrid import environment as env
from mlgrid.exceptions import InvalidParameterValue

__all__ = ["RunLimits", "RunUser", "directory_bytes", "resolve_run_user"]

#: Process exits that mean "killed by this signal", directly or as reported by a shell (128+n).
_SHELL_SIGNAL_BASE = 128
#: CPU seconds between SIGXCPU (the limit) and SIGKILL (for a command that ignores SIGXCPU).
_CPU_GRACE_SECONDS = 2
#: Signs of a failed allocation in what a run printed last (Python, C, C++).
_OUT_OF_MEMORY = (b"MemoryError", b"Cannot allocate memory", b"std::bad_alloc", b"out of memory")
#: Signs of a write beyond RLIMIT_FSIZE that did not kill the writer (Python ignores SIGXFSZ).
_FILE_TOO_LARGE = (b"File too large",)


@dataclass(frozen=True)
class RunUser:
    """The account a run's processes execute as."""

    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class RunLimits:
    """The limits of one local run (0: no limit)."""

    cpu_seconds: float
    wall_seconds: float
    memory_bytes: int
    disk_bytes: int

    @classmethod
    def from_env(cls) -> RunLimits:
        return cls(
            cpu_seconds=env.MLGRID_PROJECTS_RUN_MAX_CPU_SECONDS.get(),
            wall_seconds=env.MLGRID_PROJECTS_RUN_MAX_SECONDS.get(),
            memory_bytes=int(env.MLGRID_PROJECTS_RUN_MAX_MEMORY_BYTES.get()),
            disk_bytes=int(env.MLGRID_PROJECTS_RUN_MAX_DISK_BYTES.get()),
        )

    def shell_prefix(self, shell: str) -> str:
        """``ulimit`` lines that set the limits in the run's shell before its command, so they
        hold for every process it starts and none can raise them back.

        (Set by the shell rather than a ``preexec_fn``, which is not safe in a threaded
        service.) bash counts ``-f`` in KiB, a POSIX sh in 512-byte blocks; ``-v`` is in KiB.
        """
        lines = []
        if self.cpu_seconds:
            # SIGXCPU at the soft limit; a command that handles it gets SIGKILL at the hard
            # one, a few CPU seconds on (with both equal the kernel would SIGKILL at once).
            soft = max(1, int(self.cpu_seconds))
            lines += [f"ulimit -S -t {soft}", f"ulimit -H -t {soft + _CPU_GRACE_SECONDS}"]
        if self.memory_bytes:
            lines.append(f"ulimit -v {max(1, self.memory_bytes // 1024)}")
        if self.disk_bytes:
            unit = 1024 if Path(shell).name == "bash" else 512
            lines.append(f"ulimit -f {max(1, self.disk_bytes // unit)}")
        # A limit that cannot be set stops the run before its command, rather than running it
        # without the limit.
        return "".join(f"{line} || exit 125\n" for line in lines)

    def explain(
        self,
        exit_code: int | None,
        *,
        elapsed: float,
        workdir_bytes: int,
        output_tail: bytes,
    ) -> str | None:
        """Which limit stopped a run that failed, naming its setting; None if none did."""
        signum = _signal_of(exit_code)
        if self.wall_seconds and elapsed >= self.wall_seconds:
            return (
                f"the run took longer than MLGRID_PROJECTS_RUN_MAX_SECONDS "
                f"({self.wall_seconds:g} s) and was stopped"
            )
        if self.cpu_seconds and signum == signal.SIGXCPU:
            return (
                f"the run used its CPU time limit MLGRID_PROJECTS_RUN_MAX_CPU_SECONDS "
                f"({self.cpu_seconds:g} s) and was killed"
            )
        if self.disk_bytes and (
            signum == signal.SIGXFSZ
            or workdir_bytes >= self.disk_bytes
            or any(sign in output_tail for sign in _FILE_TOO_LARGE)
        ):
            return (
                f"the run wrote more than MLGRID_PROJECTS_RUN_MAX_DISK_BYTES "
                f"({self.disk_bytes} bytes, per file and in its working copy) and was stopped"
            )
        if self.memory_bytes and any(sign in output_tail for sign in _OUT_OF_MEMORY):
            return (
                f"the run ran out of memory under MLGRID_PROJECTS_RUN_MAX_MEMORY_BYTES "
                f"({self.memory_bytes} bytes of address space per process)"
            )
        return None


def _signal_of(exit_code: int | None) -> int | None:
    if exit_code is None:
        return None
    if exit_code < 0:
        return -exit_code
    if exit_code > _SHELL_SIGNAL_BASE:
        return exit_code - _SHELL_SIGNAL_BASE
    return None


def resolve_run_user() -> RunUser | None:
    """The user runs execute as: None (the service's own) unless the service is root and
    ``MLGRID_PROJECTS_RUN_USER`` names another account."""
    if os.geteuid() != 0:
        return None
    raw = (env.MLGRID_PROJECTS_RUN_USER.get() or "").strip()
    if not raw:
        return None
    try:
        entry = pwd.getpwuid(int(raw)) if raw.isdigit() else pwd.getpwnam(raw)
    except (KeyError, ValueError):
        raise InvalidParameterValue(
            f"MLGRID_PROJECTS_RUN_USER={raw[:64]!r} is not a user on the projects service's "
            "host; name an existing unprivileged account (e.g. nobody), or '' to run as the "
            "service's user"
        ) from None
    if entry.pw_uid == 0:
        return None  # the operator asked for root explicitly
    return RunUser(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def unreachable_part(path: Path, user: RunUser) -> Path | None:
    """The first directory on the way to ``path`` that ``user`` cannot pass through (x), or
    None when it can reach it."""
    current = Path("/")
    for part in path.resolve().parts[1:]:
        current = current / part
        try:
            info = current.stat()
        except OSError:
            return current
        if not stat.S_ISDIR(info.st_mode):
            continue
        if info.st_uid == user.uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == user.gid:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return current
    return None


def give_to(directory: Path, user: RunUser) -> None:
    """Makes ``directory`` and everything below it the run user's (the working copy)."""
    os.chown(directory, user.uid, user.gid)
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            os.chown(os.path.join(root, name), user.uid, user.gid, follow_symlinks=False)


def directory_bytes(directory: Path, stop_at: int = 0) -> int:
    """Bytes of the regular files below ``directory`` (counting stops once past ``stop_at``)."""
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            try:
                info = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
        if stop_at and total >= stop_at:
            return total
    return total
