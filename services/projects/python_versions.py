"""Finding an installed Python interpreter for a requested version.

Looked for, in order: the service's own interpreter when it matches, pyenv's versions
(``$PYENV_ROOT/versions`` or ``~/.pyenv/versions``), then ``pythonX.Y`` / ``pythonX`` on PATH.
Nothing is downloaded: a missing version is a clear error naming it.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mlgrid.exceptions import InvalidParameterValue

__all__ = ["Interpreter", "find_python"]


@dataclass(frozen=True)
class Interpreter:
    """An installed Python."""

    path: Path
    #: Full version, e.g. "3.11.7".
    version: str


def _parse(version: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return None


def _matches(found: tuple[int, ...], wanted: tuple[int, ...]) -> bool:
    return found[: len(wanted)] == wanted


def _pyenv_root() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def _from_pyenv(wanted: tuple[int, ...]) -> Interpreter | None:
    versions = _pyenv_root() / "versions"
    if not versions.is_dir():
        return None
    found: list[tuple[tuple[int, ...], Path]] = []
    for entry in versions.iterdir():
        parsed = _parse(entry.name)
        python = entry / "bin" / "python"
        if parsed and _matches(parsed, wanted) and python.exists():
            found.append((parsed, python))
    if not found:
        return None
    parsed, python = max(found)
    return Interpreter(path=python, version=".".join(map(str, parsed)))


def _version_of(executable: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run(
            [executable, "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None  # e.g. a pyenv shim for a version that is not selected
    return _parse(out)


def _from_path(wanted: tuple[int, ...]) -> Interpreter | None:
    names = [f"python{'.'.join(map(str, wanted[:2]))}"] if len(wanted) >= 2 else []
    names.append(f"python{wanted[0]}")
    for name in names:
        executable = shutil.which(name)
        if executable is None:
            continue
        parsed = _version_of(executable)
        if parsed and _matches(parsed, wanted):
            return Interpreter(path=Path(executable), version=".".join(map(str, parsed)))
    return None


def find_python(version: str | None, asked_by: str = "the project") -> Interpreter:
    """The interpreter for ``version`` ("3.11", "3.11.7"); the current one when None."""
    current = Interpreter(path=Path(sys.executable), version=platform.python_version())
    if not version:
        return current
    wanted = _parse(version)
    if wanted is None:
        raise InvalidParameterValue(f"Python version {version!r} ({asked_by}) is not a version")
    if _matches(sys.version_info[:3], wanted):
        return current
    found = _from_pyenv(wanted) or _from_path(wanted)
    if found is None:
        short = ".".join(map(str, wanted[:2]))
        raise InvalidParameterValue(
            f"Python {version} (asked for by {asked_by}) is not installed here: looked in "
            f"{_pyenv_root() / 'versions'} and for python{short} on PATH. Install it (e.g. "
            f"`pyenv install {version}`) or run with env_manager 'local'."
        )
    return found
