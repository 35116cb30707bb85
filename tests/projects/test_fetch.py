"""Project sources: local directories, real git repositories (branches, tags, commits,
sub-directories) and zip archives, each fetched into a private working copy."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from mlgrid.exceptions import InvalidParameterValue
from mlgrid.projects.fetch import _is_git_uri, fetch_project
from mlgrid.projects.spec import load_project

from .helpers import commit_all, git, write


def shown_version(directory: Path) -> str:
    return (directory / "show.py").read_text().split("=")[1].split("'")[0]


@pytest.mark.parametrize(
    ("version", "label"),
    [(None, "v3"), ("main", "v3"), ("feature", "v2"), ("v1", "v1")],
)
def test_git_versions_by_branch_and_tag(
    git_repo: dict[str, object], tmp_path: Path, version: str | None, label: str
) -> None:
    repo = git_repo["path"]
    assert isinstance(repo, Path)
    fetched = fetch_project(f"{repo.as_uri()}#proj", version, tmp_path / "work")
    assert shown_version(fetched.directory) == label
    assert fetched.git_commit == git_repo[label]
    assert fetched.git_repo_url == repo.as_uri()
    assert fetched.directory.is_relative_to(tmp_path / "work")
    assert load_project(fetched.directory).name == "versioned"
    if version == "feature":
        assert fetched.git_branch == "feature"


def test_git_version_by_commit_from_a_local_repository_path(
    git_repo: dict[str, object], tmp_path: Path
) -> None:
    repo = git_repo["path"]
    assert isinstance(repo, Path)
    commit = git_repo["v2"]
    assert isinstance(commit, str)
    # A path inside the repository keeps its place relative to the repository root.
    fetched = fetch_project(str(repo / "proj"), commit[:10], tmp_path / "work")
    assert shown_version(fetched.directory) == "v2"
    assert fetched.git_commit == commit
    assert git(repo, "rev-parse", "HEAD") == git_repo["v3"]  # the user's checkout is untouched


def test_unknown_version_is_a_clear_error(git_repo: dict[str, object], tmp_path: Path) -> None:
    repo = git_repo["path"]
    assert isinstance(repo, Path)
    with pytest.raises(InvalidParameterValue, match=r"version 'no-such-branch' not found"):
        fetch_project(repo.as_uri(), "no-such-branch", tmp_path / "work")
    with pytest.raises(InvalidParameterValue, match=r"is not allowed"):
        fetch_project(repo.as_uri(), "--upload-pack=touch /tmp/x", tmp_path / "work2")


def test_missing_subdirectory_is_refused(git_repo: dict[str, object], tmp_path: Path) -> None:
    repo = git_repo["path"]
    assert isinstance(repo, Path)
    with pytest.raises(InvalidParameterValue, match="sub-directory 'nope' does not exist"):
        fetch_project(f"{repo.as_uri()}#nope", None, tmp_path / "work")
    with pytest.raises(InvalidParameterValue, match="inside the project"):
        fetch_project(f"{repo.as_uri()}#../..", None, tmp_path / "work2")


def test_local_directory_is_copied_with_uncommitted_changes(
    git_repo: dict[str, object], tmp_path: Path
) -> None:
    repo = git_repo["path"]
    assert isinstance(repo, Path)
    (repo / "proj" / "show.py").write_text("print('version=dirty')\n")
    fetched = fetch_project("proj", None, tmp_path / "work", base_dir=repo)
    assert shown_version(fetched.directory) == "dirty"
    assert fetched.directory != repo / "proj"
    assert not (fetched.directory / ".git").exists()
    assert fetched.git_commit == git_repo["v3"]  # the commit the copy was taken from
    assert fetched.source_name == str(repo / "proj")
    (fetched.directory / "scratch.txt").write_text("written by the run")
    assert not (repo / "proj" / "scratch.txt").exists()


def test_version_needs_a_git_project(tmp_path: Path) -> None:
    write(tmp_path / "plain", {"MLproject": "name: p\n"})
    with pytest.raises(InvalidParameterValue, match="not in a git repository"):
        fetch_project(str(tmp_path / "plain"), "main", tmp_path / "work")


def test_git_uri_forms_are_recognised() -> None:
    assert _is_git_uri("https://github.com/mlflow/mlflow-example")
    assert _is_git_uri("git@github.com:mlflow/mlflow-example.git")
    assert _is_git_uri("ssh://git@host/repo.git")
    assert not _is_git_uri("/local/path")
    assert not _is_git_uri("https://example.com/project.zip")


def test_unreachable_git_repository_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterValue, match="cannot clone git repository"):
        fetch_project("https://127.0.0.1:9/missing/repo.git", "main", tmp_path / "w")


def make_zip(path: Path, entries: dict[str, str], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in entries.items():
            zf.writestr(name, text)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def test_zip_archive_with_subdirectory(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "project.zip",
        {"inner/MLproject": "name: zipped\n", "inner/run.py": "print(1)\n"},
    )
    fetched = fetch_project(f"{archive}#inner", None, tmp_path / "work")
    assert load_project(fetched.directory).name == "zipped"
    assert (fetched.directory / "run.py").read_text() == "print(1)\n"


@pytest.mark.parametrize(
    ("entries", "links", "reason"),
    [
        ({"../evil.py": "x"}, None, "climbs out with '..'"),
        ({"a/../../evil.py": "x"}, None, "climbs out with '..'"),
        ({"/etc/evil": "x"}, None, "absolute or non-portable"),
        ({"a\\..\\evil": "x"}, None, "absolute or non-portable"),
        ({"ok.py": "x"}, {"link": "/etc/passwd"}, "is a symbolic link"),
    ],
)
def test_zip_slip_is_refused(
    tmp_path: Path, entries: dict[str, str], links: dict[str, str] | None, reason: str
) -> None:
    archive = make_zip(tmp_path / "evil.zip", entries, links)
    work = tmp_path / "nested" / "work"
    with pytest.raises(InvalidParameterValue, match=reason):
        fetch_project(str(archive), None, work)
    assert not (tmp_path / "nested" / "evil.py").exists()
    assert not (tmp_path / "evil.py").exists()
    assert list(work.iterdir()) == []  # nothing was extracted


def test_commit_of_a_new_repository_state(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    write(repo, {"MLproject": "name: r\n", "show.py": "print('version=one')\n"})
    git(repo, "init", "-q", "-b", "trunk")
    first = commit_all(repo, "one")
    fetched = fetch_project(repo.as_uri(), None, tmp_path / "work")
    assert fetched.git_commit == first
    assert shown_version(fetched.directory) == "one"


def test_file_uri_of_a_plain_directory_is_copied(tmp_path: Path) -> None:
    source = write(tmp_path / "plain dir", {"MLproject": "name: plain\n", "a.py": "print(1)\n"})
    fetched = fetch_project(source.as_uri(), None, tmp_path / "work")
    assert load_project(fetched.directory).name == "plain"
    assert fetched.directory.is_relative_to(tmp_path / "work")
    assert fetched.source_name == source.as_uri()
    assert fetched.git_commit is None
