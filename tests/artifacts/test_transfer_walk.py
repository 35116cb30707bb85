"""The SDK's directory walk for log_artifacts: the files rglob would find, sizes, order."""

from __future__ import annotations

from pathlib import Path

from mlgrid.artifacts.transfer import _batches, _local_files


def test_the_walk_finds_what_rglob_finds_in_the_same_order(tmp_path: Path) -> None:
    (tmp_path / "a" / "c").mkdir(parents=True)
    (tmp_path / "a" / "b").write_bytes(b"1")
    (tmp_path / "a-b").write_bytes(b"22")
    (tmp_path / "a" / "c" / "deep.txt").write_bytes(b"333")
    (tmp_path / "Z.txt").write_bytes(b"")
    (tmp_path / "to-file").symlink_to(tmp_path / "a-b")  # a symlink to a file is a file
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    (tmp_path / "to-dir").symlink_to(tmp_path / "a", target_is_directory=True)  # not entered
    expected = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    found = _local_files(tmp_path)
    assert [p for p, _ in found] == expected
    assert [size for _, size in found] == [p.stat().st_size for p in expected]


def test_batches_respect_the_byte_and_file_limits() -> None:
    files = [(Path(f"f{i}"), f"f{i}", 1024 * 1024) for i in range(10)]
    batches = _batches(files, spread=100)
    assert [len(b) for b in batches] == [4, 4, 2]  # 4 MiB per batch
    assert [p for b in batches for _, p in b] == [f"f{i}" for i in range(10)]
