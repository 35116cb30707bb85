"""Paging a large local directory: pages come from its sorted names, read once while the
directory is unchanged, and a change (an entry added or removed) shows on the next page."""

from __future__ import annotations

import os
from pathlib import Path

from mlgrid.artifacts.repository import FileInfo
from mlgrid_services.artifacts.repositories import _sorted_names
from mlgrid_services.artifacts.repositories.file import FileArtifactRepository


def _settle(directory: Path) -> None:
    """Dates the directory's mtime back, as if it had been unchanged for a minute."""
    old = directory.stat().st_mtime_ns - 60 * 10**9
    os.utime(directory, ns=(old, old))


def test_pages_follow_changes_to_a_kept_directory(tmp_path: Path) -> None:
    directory = tmp_path / "many"
    directory.mkdir()
    for i in range(1_500):
        (directory / f"f{i:04}").write_bytes(b"x" * (i % 7))
    (directory / ".mlgrid-tmp-hidden").write_bytes(b"")
    _settle(directory)
    repository = FileArtifactRepository(tmp_path.as_uri())
    first = repository.list_artifacts_page("many", "", 500)
    assert [info.path for info in first] == [f"many/f{i:04}" for i in range(500)]
    assert first[3] == FileInfo("many/f0003", False, 3)
    assert any(key[1] == str(directory) for key in _sorted_names._kept)  # read once, kept

    (directory / "f0600-late").write_bytes(b"new")  # lands in the next page
    (directory / "f0501").unlink()
    second = repository.list_artifacts_page("many", first[-1].path, 500)
    paths = [info.path for info in second]
    assert "many/f0600-late" in paths and "many/f0501" not in paths
    assert paths == sorted(paths) and len(paths) == 500

    _settle(directory)
    rest = []
    after = first[-1].path
    while page := repository.list_artifacts_page("many", after, 400):
        rest += page
        after = page[-1].path
    expected = sorted(name for name in os.listdir(directory) if not name.startswith(".mlgrid-"))
    assert [info.path for info in first + rest] == [f"many/{name}" for name in expected]
