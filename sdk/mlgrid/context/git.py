"""Git commit, branch and repository URL of the script, read with the ``git`` CLI.

Two short ``git`` invocations per directory, cached for the process; silent (no tags) when
git is not installed, the script is not in a checkout, or git takes too long.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

from mlgrid import environment as env

from .abstract import RunContextProvider
from .default import main_file
from .tags import MLFLOW_GIT_BRANCH, MLFLOW_GIT_COMMIT, MLFLOW_GIT_REPO_URL


def _git(directory: str, *args: str) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        done = subprocess.run(
            [git, "-C", directory, *args],
            capture_output=True,
            text=True,
            timeout=env.MLGRID_GIT_TIMEOUT.get(),
            # Never prompt (credential helpers) and never page.
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat"},
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


@functools.lru_cache(maxsize=32)
def git_tags(directory: str) -> dict[str, str]:
    """Git context tags for a checkout containing ``directory`` ({} when there is none)."""
    heads = _git(directory, "rev-parse", "HEAD", "--abbrev-ref", "HEAD")
    if heads is None:
        return {}
    lines = heads.split()
    if not lines:
        return {}
    tags = {MLFLOW_GIT_COMMIT: lines[0]}
    # A detached HEAD has no branch ("HEAD"); MLflow leaves the tag out then.
    if len(lines) > 1 and lines[1] != "HEAD":
        tags[MLFLOW_GIT_BRANCH] = lines[1]
    remote = _git(directory, "remote", "get-url", "origin")
    if remote is None:
        # No "origin": take the first remote, if any.
        names = (_git(directory, "remote") or "").split()
        remote = _git(directory, "remote", "get-url", names[0]) if names else None
    if remote and remote.strip():
        tags[MLFLOW_GIT_REPO_URL] = remote.strip()
    return tags


def source_directory() -> str | None:
    """The directory of the running script, or None in a console."""
    script = main_file()
    if script is None:
        return None
    path = Path(script).absolute()
    return str(path.parent if not path.is_dir() else path)


class GitRunContext(RunContextProvider):
    """Applies when the running script lives in a git checkout."""

    def in_context(self) -> bool:
        directory = source_directory()
        return directory is not None and bool(git_tags(directory))

    def tags(self) -> dict[str, str]:
        directory = source_directory()
        return dict(git_tags(directory)) if directory else {}
