"""Fixtures of the projects tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import commit_all, git, write


@pytest.fixture(scope="session")
def git_repo_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A repository with a project in ``proj/``: v1 on main (tag v1), v2 on branch ``feature``,
    v3 as main's head. Each version's script prints its own label."""
    repo = tmp_path_factory.mktemp("git") / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")

    def version(label: str) -> None:
        write(
            repo,
            {
                "proj/MLproject": """
                    name: versioned
                    entry_points:
                      main:
                        command: "python show.py"
                """,
                "proj/show.py": f"print('version={label}')\n",
                "README": "a repository with a project in proj/\n",
            },
        )

    version("v1")
    v1 = commit_all(repo, "v1")
    git(repo, "tag", "v1")
    git(repo, "checkout", "-q", "-b", "feature")
    version("v2")
    v2 = commit_all(repo, "v2")
    git(repo, "checkout", "-q", "main")
    version("v3")
    v3 = commit_all(repo, "v3")
    return {"path": repo, "v1": v1, "v2": v2, "v3": v3}


@pytest.fixture
def git_repo(git_repo_template: dict[str, object], tmp_path: Path) -> dict[str, object]:
    """A private copy of the template repository (tests may dirty it)."""
    source = git_repo_template["path"]
    assert isinstance(source, Path)
    copy = tmp_path / "repo"
    shutil.copytree(source, copy, symlinks=True)
    return {**git_repo_template, "path": copy}


@pytest.fixture(scope="session")
def env_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A session-wide environment cache (MLGRID_ENV_ROOT), so a virtualenv is built once."""
    root = tmp_path_factory.mktemp("envs")
    previous = os.environ.get("MLGRID_ENV_ROOT")
    os.environ["MLGRID_ENV_ROOT"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("MLGRID_ENV_ROOT", None)
    else:
        os.environ["MLGRID_ENV_ROOT"] = previous


@pytest.fixture(autouse=True)
def _open_project_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests run projects from local directories and loopback servers, which a deployment's
    source policy refuses (tests/hardening/test_project_sources.py checks it)."""
    monkeypatch.setenv("MLGRID_PROJECTS_ALLOW_LOCAL_PATHS", "true")
    monkeypatch.setenv("MLGRID_PROJECTS_ALLOWED_HOSTS", "*")
    monkeypatch.setenv("MLGRID_PROJECTS_ALLOW_PRIVATE_ADDRESSES", "true")
    # Their projects, inputs and environment caches live in root's private temporary
    # directories, which the default run user (nobody) cannot enter; the run user and the
    # limits are tested in tests/hardening/test_run_limits.py.
    monkeypatch.setenv("MLGRID_PROJECTS_RUN_USER", "")
