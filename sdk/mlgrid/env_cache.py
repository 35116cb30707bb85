"""The environment cache: content-addressed directories under ``MLGRID_ENV_ROOT``.

Shared by the environments projects run in (the projects service) and the environments models
are served in (``mlgrid models serve --env-manager``): one lock, one key, one build protocol.

Builders of the same environment take a per-key file lock, so a second builder waits and then
reuses the first one's result; a build happens in a scratch directory and becomes visible by an
atomic rename, so a crashed or failed build never leaves a half-built environment behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlgrid import environment
from mlgrid.exceptions import InvalidParameterValue

__all__ = [
    "COMPLETE_MARKER",
    "BuildOutput",
    "content_key",
    "env_root",
    "find_conda",
    "key_lock",
    "publish",
    "run_logged",
    "scratch_dir",
]

#: Written last into a finished environment.
COMPLETE_MARKER = ".mlgrid-env-complete"

Log = Callable[[str], None]


def env_root() -> Path:
    """``MLGRID_ENV_ROOT``, else ``~/.mlgrid/envs``."""
    return Path(environment.MLGRID_ENV_ROOT.get() or Path.home() / ".mlgrid" / "envs").expanduser()


def find_conda(instead: str) -> str:
    """The conda binary: $MLGRID_CONDA_HOME/bin/conda ($MLFLOW_CONDA_HOME), else on PATH.

    ``instead`` ends the error when there is none: what the caller can use in its place.
    """
    home = environment.MLGRID_CONDA_HOME.get()
    if home:
        binary = Path(home) / "bin" / "conda"
        if not binary.exists():
            raise InvalidParameterValue(
                f"{environment.MLGRID_CONDA_HOME.source()}={home} has no bin/conda; point it at a "
                "conda installation"
            )
        return str(binary)
    found = shutil.which("conda")
    if found:
        return found
    raise InvalidParameterValue(
        "conda is needed but no conda is installed: set MLGRID_CONDA_HOME (or MLFLOW_CONDA_HOME) "
        f"to a conda installation or put conda on PATH; or {instead}"
    )


def content_key(description: dict[str, Any]) -> str:
    """A stable hash of what defines an environment."""
    payload = json.dumps(description, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


@contextmanager
def key_lock(root: Path, key: str) -> Iterator[None]:
    """Serialises builders of one environment (across processes on this host)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{key}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def scratch_dir(root: Path, key: str) -> Path:
    """A fresh directory next to the final one (same file system, so rename is atomic)."""
    return Path(tempfile.mkdtemp(prefix=f".building-{key}-", dir=root))


def relocate_text(directory: Path, old: str, new: str) -> None:
    """Rewrites ``old`` to ``new`` in the venv's scripts and config (shebangs, activate)."""
    old_b, new_b = old.encode(), new.encode()
    candidates = [directory / "pyvenv.cfg"]
    bin_dir = directory / "bin"
    if bin_dir.is_dir():
        candidates.extend(p for p in bin_dir.iterdir() if p.is_file() and not p.is_symlink())
    for path in candidates:
        try:
            if path.stat().st_size > 1_000_000:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        if old_b in data:
            path.write_bytes(data.replace(old_b, new_b))


def publish(scratch: Path, final: Path) -> None:
    """Makes a finished build visible under its final name (atomically)."""
    (scratch / COMPLETE_MARKER).write_text("ok\n")
    relocate_text(scratch, str(scratch), str(final))
    if final.exists():  # an interrupted earlier build without marker
        shutil.rmtree(final, ignore_errors=True)
    try:
        os.rename(scratch, final)
    except OSError:
        shutil.rmtree(scratch, ignore_errors=True)
        if not (final / COMPLETE_MARKER).exists():
            raise


class BuildOutput:
    """Where a build writes its output (callable like a Log); a cancel stops its installer."""

    def __init__(self, write: Log) -> None:
        self._write = write
        self._proc: subprocess.Popen[bytes] | None = None
        self._cancelled = False
        self._lock = threading.Lock()

    def __call__(self, text: str) -> None:
        self._write(text)

    def started(self, proc: subprocess.Popen[bytes] | None) -> None:
        with self._lock:
            self._proc = proc
            cancelled = self._cancelled
        if cancelled and proc is not None:
            _kill_group(proc)

    def cancel(self) -> None:
        """Kills the installer running now (and refuses to start another)."""
        with self._lock:
            self._cancelled = True
            proc = self._proc
        if proc is not None:
            _kill_group(proc)

    @property
    def cancelled(self) -> bool:
        return self._cancelled


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_logged(
    command: Sequence[str], log: Log, what: str, env: dict[str, str] | None = None
) -> None:
    """Runs an installer command, copying its output to the run's log line by line."""
    output = log if isinstance(log, BuildOutput) else None
    if output is not None and output.cancelled:
        raise InvalidParameterValue(f"{what} was not started: the run was cancelled")
    log(f"$ {' '.join(command)}\n")
    try:
        proc = subprocess.Popen(
            list(command),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # so a cancel reaches pip's own subprocesses too
        )
    except OSError as exc:
        raise InvalidParameterValue(f"{what} failed to start: {exc}") from exc
    if output is not None:
        output.started(proc)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            log(line.decode("utf-8", errors="replace"))
        limit = environment.MLGRID_ENV_INSTALL_TIMEOUT
        try:
            code = proc.wait(timeout=limit.get())
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise InvalidParameterValue(
                f"{what} took longer than {limit.get():.0f}s ({limit.name})"
            ) from None
    finally:
        if output is not None:
            output.started(None)
    if code != 0:
        raise InvalidParameterValue(
            f"{what} failed with exit code {code} (its output is logged above)"
        )
