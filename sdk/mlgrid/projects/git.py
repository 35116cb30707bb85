"""The few git operations projects need, through the git command line.

The CLI (rather than a library) keeps the SDK light and behaves exactly like the user's own
git: same credentials helpers, same SSH configuration. Prompts are disabled so a private
repository fails fast instead of hanging a service thread on a password question.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from mlgrid import environment as env
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.projects.size_cap import SizeCap

__all__ = ["clone", "head_commit", "is_git_repo_root", "remote_url", "toplevel"]


def _git_env() -> dict[str, str]:
    child = dict(os.environ)
    child["GIT_TERMINAL_PROMPT"] = "0"
    # Only transports that fetch data; "ext::" and friends would run commands.
    child["GIT_ALLOW_PROTOCOL"] = "file:git:http:https:ssh"
    child.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    return child


def _run(
    args: list[str], cwd: Path | None = None, watch: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs git; ``watch`` (if given) is called every quarter second while it runs, and an
    exception from it kills git and propagates (a size cap on a clone)."""
    if shutil.which("git") is None:
        raise InvalidParameterValue("git projects need the git command, which is not installed")
    timeout = env.MLGRID_PROJECT_FETCH_TIMEOUT.get()
    try:
        if watch is None:
            return subprocess.run(
                ["git", *args],
                cwd=cwd,
                env=_git_env(),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        return _run_watched(["git", *args], cwd, watch, timeout)
    except subprocess.TimeoutExpired as exc:
        raise InvalidParameterValue(
            f"git {args[0]} took longer than {timeout:.0f}s "
            f"({env.MLGRID_PROJECT_FETCH_TIMEOUT.name})"
        ) from exc


def _run_watched(
    argv: list[str], cwd: Path | None, watch: Callable[[], None], timeout: float
) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + timeout
    with subprocess.Popen(
        argv,
        cwd=cwd,
        env=_git_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            while True:
                try:
                    out, err = proc.communicate(timeout=0.25)
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() > deadline:
                        raise
                    watch()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _output(args: list[str], cwd: Path) -> str | None:
    result = _run(args, cwd)
    return result.stdout.strip() if result.returncode == 0 else None


def toplevel(path: Path) -> Path | None:
    """The root of the work tree containing ``path``, or None outside git."""
    if shutil.which("git") is None:
        return None
    out = _output(["rev-parse", "--show-toplevel"], path)
    return Path(out) if out else None


def is_git_repo_root(path: Path) -> bool:
    """True when ``path`` is the root of a work tree or a bare repository."""
    if (path / ".git").exists():
        return True
    return (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()


def head_commit(path: Path) -> str | None:
    """The commit checked out at ``path`` (None outside git or in an empty repository)."""
    if shutil.which("git") is None:
        return None
    return _output(["rev-parse", "HEAD"], path)


def remote_url(path: Path) -> str | None:
    """The ``origin`` remote's URL, if there is one."""
    if shutil.which("git") is None:
        return None
    return _output(["config", "--get", "remote.origin.url"], path) or None


def _check_ref(value: str, what: str) -> None:
    # A leading "-" would be read by git as an option.
    if not value or value.startswith("-") or "\x00" in value or "\n" in value:
        raise InvalidParameterValue(f"{what} {value!r} is not allowed")


def clone(url: str, dest: Path, version: str | None, cap: SizeCap | None = None) -> str:
    """Clones ``url`` into ``dest`` and checks out ``version`` (commit, branch or tag).

    Returns the commit checked out. With ``cap``, git is stopped once ``dest`` outgrows it.
    """
    _check_ref(url, "git URI")
    if version is not None:
        _check_ref(version, "version")
    watch = (lambda: cap.check_tree(dest)) if cap is not None else None
    result = _run(["clone", "--quiet", "--no-checkout", "--", url, str(dest)], watch=watch)
    if result.returncode != 0:
        raise InvalidParameterValue(
            f"cannot clone git repository {url!r}: {result.stderr.strip() or 'git clone failed'}"
        )
    target = version or "HEAD"
    # --end-of-options is not enough for checkout of a ref named like a path; _check_ref
    # refuses "-..." and checkout resolves commits, branches (origin/<name>) and tags.
    result = _run(["checkout", "--quiet", target], dest, watch)
    if result.returncode != 0 and version is not None:
        # A remote branch that has no local branch yet.
        result = _run(["checkout", "--quiet", "-B", version, f"origin/{version}"], dest, watch)
    if cap is not None:
        cap.check_tree(dest)
    if result.returncode != 0:
        raise InvalidParameterValue(
            f"version {version!r} not found in git repository {url!r} (give a commit, branch "
            f"or tag): {result.stderr.strip()}"
        )
    commit = head_commit(dest)
    if commit is None:
        raise InvalidParameterValue(f"git repository {url!r} has no commits")
    return commit
