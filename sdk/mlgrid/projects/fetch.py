"""Turning a project URI into a private working copy.

Sources: a local directory (copied, uncommitted changes included, as MLflow runs them),
``file://`` URIs, git repositories (``https://``, ``ssh://``, ``git://``, ``user@host:path``,
``file://…`` repositories, and local repositories when a version is asked for), and zip
archives (local, ``file://`` or ``http(s)://``). ``#sub/dir`` selects a sub-directory. The
user's checkout is never run in place: every run gets its own copy.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from mlgrid import environment as env
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.projects import git
from mlgrid.projects.archive import extract_zip
from mlgrid.projects.size_cap import SizeCap, SourceTooLarge
from mlgrid.projects.spec import resolve_inside

__all__ = ["FetchedProject", "SourceTooLarge", "fetch_project", "split_subdirectory"]

#: Bytes read from a download at a time.
_CHUNK = 256 * 1024

_SCP_LIKE = re.compile(r"^[\w.+-]+@[\w.-]+:")
_GIT_SCHEMES = ("https", "http", "ssh", "git", "git+ssh", "git+https")
#: Not copied from local directories: version control data, caches, local tracking data.
_COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    "__pycache__",
    ".venv",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    "mlruns",
    "mlgrid-artifacts",
    "mlgrid.db",
    "mlgrid.db-*",
)


@dataclass(frozen=True)
class FetchedProject:
    """A working copy ready to run."""

    #: The project directory (the sub-directory when the URI named one).
    directory: Path
    #: What ``mlflow.source.name`` shows.
    source_name: str
    #: Commit the copy was taken from (git sources and local repositories).
    git_commit: str | None = None
    #: Repository URL for ``mlflow.source.git.repoURL``.
    git_repo_url: str | None = None
    #: The version asked for when it is a branch (for ``mlflow.source.git.branch``).
    git_branch: str | None = None


def split_subdirectory(uri: str) -> tuple[str, str]:
    """``"repo#sub/dir"`` → ``("repo", "sub/dir")``."""
    base, _, sub = uri.partition("#")
    sub = sub.strip("/")
    if sub and (".." in Path(sub).parts or sub.startswith("/")):
        raise InvalidParameterValue(
            f"project sub-directory {sub!r} must be a relative path inside the project"
        )
    return base, sub


def _file_uri_path(uri: str) -> Path:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise InvalidParameterValue(f"file URI {uri!r} names a remote host; use a local path")
    return Path(url2pathname(parts.path))


def _is_git_uri(base: str) -> bool:
    scheme = urlsplit(base).scheme
    return (scheme in _GIT_SCHEMES and not base.lower().endswith(".zip")) or bool(
        _SCP_LIKE.match(base)
    )


def _branch_or_none(repo: Path, version: str | None) -> str | None:
    if not version:
        return None
    return version if (repo / ".git" / "refs" / "heads" / version).exists() else None


def _with_subdir(root: Path, sub: str, uri: str) -> Path:
    if not sub:
        return root
    directory = resolve_inside(root, sub, "project sub-directory")
    if not directory.is_dir():
        raise InvalidParameterValue(f"project {uri!r}: sub-directory {sub!r} does not exist")
    return directory


def fetch_project(
    uri: str,
    version: str | None,
    dest: Path,
    base_dir: Path | None = None,
    max_bytes: int | None = None,
) -> FetchedProject:
    """Copies, clones or extracts the project at ``uri`` into the empty directory ``dest``.

    Relative local paths resolve against ``base_dir`` (the caller's working directory). With
    ``max_bytes`` the fetch stops (:class:`SourceTooLarge`) as soon as it brings in more.
    """
    uri = uri.strip()
    if not uri or uri.startswith("-") or "\x00" in uri:
        raise InvalidParameterValue(f"project URI {uri!r} is not a path, file:// URI or git URI")
    version = version or None
    cap = SizeCap(max_bytes, repr(uri[:200])) if max_bytes is not None else None
    base, sub = split_subdirectory(uri)
    dest.mkdir(parents=True, exist_ok=True)
    if base.lower().endswith(".zip"):
        if version:
            raise InvalidParameterValue("a version can only be given for git projects, not zips")
        _fetch_zip(base, dest, base_dir, cap)
        return FetchedProject(directory=_with_subdir(dest, sub, uri), source_name=uri)
    if _is_git_uri(base):
        commit = git.clone(base, dest / "repo", version, cap)
        return FetchedProject(
            directory=_with_subdir(dest / "repo", sub, uri),
            source_name=uri,
            git_commit=commit,
            git_repo_url=base,
            git_branch=_branch_or_none(dest / "repo", version),
        )
    scheme = urlsplit(base).scheme
    if len(scheme) > 1 and scheme != "file":
        raise InvalidParameterValue(
            f"project URI {uri!r} has unsupported scheme {scheme!r}; use a local path, file://, "
            "a git URI (https://, ssh://, user@host:path) or a .zip archive"
        )
    path = _file_uri_path(base) if scheme == "file" else Path(base).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    path = path.resolve()
    if not path.is_dir():
        raise InvalidParameterValue(f"project directory {str(path)!r} does not exist")
    shown = path.as_uri() if scheme == "file" else str(path)
    shown = f"{shown}#{sub}" if sub else shown
    if (scheme == "file" and git.is_git_repo_root(path)) or version:
        repo_url = base.split("#")[0] if scheme == "file" else None
        return _fetch_local_repo(path, sub, version, dest, shown, repo_url, cap)
    copy = dest / path.name
    shutil.copytree(path, copy, symlinks=True, ignore=_COPY_IGNORE, copy_function=_copier(cap))
    top = git.toplevel(path)
    return FetchedProject(
        directory=_with_subdir(copy, sub, uri),
        source_name=shown,
        git_commit=git.head_commit(path) if top else None,
        git_repo_url=(git.remote_url(path) or str(top)) if top else None,
    )


def _copier(cap: SizeCap | None) -> Callable[[str, str], object]:
    """copytree's copy function, counting each file against ``cap`` before it is copied."""
    if cap is None:
        return shutil.copy2

    def copy(src: str, dst: str) -> object:
        cap.add(os.lstat(src).st_size)
        return shutil.copy2(src, dst)

    return copy


def _fetch_local_repo(
    path: Path,
    sub: str,
    version: str | None,
    dest: Path,
    shown: str,
    repo_url: str | None,
    cap: SizeCap | None = None,
) -> FetchedProject:
    """Clones a local repository (committed state at ``version``); a project inside a
    repository keeps its place relative to the repository root."""
    top = path if git.is_git_repo_root(path) else git.toplevel(path)
    if top is None:
        raise InvalidParameterValue(
            f"a version was given, but {str(path)!r} is not in a git repository; versions "
            "only apply to git projects"
        )
    inner = path.relative_to(top.resolve()) if top.resolve() != path else Path()
    commit = git.clone(str(top), dest / "repo", version, cap)
    root = (dest / "repo" / inner) if str(inner) != "." else dest / "repo"
    return FetchedProject(
        directory=_with_subdir(root, sub, shown),
        source_name=shown,
        git_commit=commit,
        git_repo_url=repo_url or git.remote_url(top) or str(top),
        git_branch=_branch_or_none(dest / "repo", version),
    )


def _fetch_zip(base: str, dest: Path, base_dir: Path | None, cap: SizeCap | None) -> None:
    scheme = urlsplit(base).scheme
    if scheme in ("http", "https"):
        with tempfile.NamedTemporaryFile(suffix=".zip", dir=dest) as tmp:
            try:
                with urllib.request.urlopen(
                    base, timeout=env.MLGRID_PROJECT_FETCH_TIMEOUT.get()
                ) as response:
                    _download(response, tmp, cap)
            except OSError as exc:
                raise InvalidParameterValue(f"cannot download {base!r}: {exc}") from exc
            tmp.flush()
            extract_zip(Path(tmp.name), dest, shown_as=base, cap=cap)
        return
    if len(scheme) > 1 and scheme != "file":
        raise InvalidParameterValue(f"zip archive {base!r}: unsupported scheme {scheme!r}")
    path = _file_uri_path(base) if scheme == "file" else Path(base).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    if not path.is_file():
        raise InvalidParameterValue(f"zip archive {str(path)!r} does not exist")
    extract_zip(path, dest, shown_as=base, cap=cap)


def _download(response: Any, sink: IO[bytes], cap: SizeCap | None) -> None:
    """Streams ``response`` into ``sink``, stopping once past ``cap`` (a declared length past
    it is refused before anything is read)."""
    if cap is not None:
        length = response.headers.get("Content-Length")
        if length and length.strip().isdigit():
            cap.check_declared(int(length))
    while chunk := response.read(_CHUNK):
        if cap is not None:
            cap.add(len(chunk))
        sink.write(chunk)
