"""The file backend's fast paths: grouped syncing for batches, direct I/O (opt-in) for large
files.

Each test checks what a client can see (the bytes, the names, nothing left behind) and that the
fast path was the one taken, so a change that silently fell back to the slow one fails here.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlgrid import environment as env
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist
from mlgrid_services.artifacts.repositories import _batch, _direct
from mlgrid_services.artifacts.repositories._atomic import TEMP_PREFIX
from mlgrid_services.artifacts.repositories.file import FileArtifactRepository

MiB = 1024 * 1024
#: Chunk sizes that keep the staging buffer's fill unaligned most of the time.
ODD_SIZES = [MiB + 7, 3, 5 * MiB - 1, 4096, 1, 2 * MiB + 4095]


def _odd_chunks(data: bytes) -> Iterator[bytes]:
    start, index = 0, 0
    while start < len(data):
        size = ODD_SIZES[index % len(ODD_SIZES)]
        yield data[start : start + size]
        start += size
        index += 1


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


@pytest.fixture
def repository(tmp_path: Path) -> FileArtifactRepository:
    return FileArtifactRepository((tmp_path / "root").as_uri())


@pytest.fixture
def direct_io_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Switches direct I/O on; skips where the test directory's file system refuses O_DIRECT
    (then writes are buffered anyway, which the other tests cover)."""
    monkeypatch.setenv(env.MLGRID_ARTIFACTS_DIRECT_IO.name, "1")
    fd = os.open(tmp_path / "probe", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        writer = _direct.DirectWriter(fd)
        writer.release()
    finally:
        os.close(fd)
    if not writer.direct:
        pytest.skip("this file system does not support O_DIRECT")


@pytest.mark.parametrize("direct", ["0", "1"])
def test_large_unaligned_streams_round_trip_byte_for_byte(
    repository: FileArtifactRepository, monkeypatch: pytest.MonkeyPatch, direct: str
) -> None:
    monkeypatch.setenv(env.MLGRID_ARTIFACTS_DIRECT_IO.name, direct)
    data = os.urandom(13 * MiB + 12345)  # neither the size nor the chunks are aligned
    info = repository.write_file("model/weights.bin", _odd_chunks(data))
    assert info.file_size == len(data)
    chunks = list(repository.read_file("model/weights.bin", chunk_size=MiB))
    assert b"".join(chunks) == data
    assert {len(c) for c in chunks[:-1]} == {MiB}  # direct reads honour chunk_size too
    assert _temp_files(repository.root) == []


def test_the_direct_writer_bypasses_the_page_cache_until_the_tail(
    tmp_path: Path, direct_io_works: None
) -> None:
    data = os.urandom(2 * _direct.BUFFER_BYTES + 100)
    fd = os.open(tmp_path / "out.bin", os.O_WRONLY | os.O_CREAT, 0o600)
    writer = _direct.DirectWriter(fd)
    try:
        for chunk in _odd_chunks(data):
            writer.write(chunk)
            assert writer.direct, "a full staging buffer went out buffered"
        writer.finish()
        assert not writer.direct  # the unaligned tail goes through the page cache
    finally:
        writer.release()
        os.close(fd)
    assert (tmp_path / "out.bin").read_bytes() == data
    assert writer.size == len(data)


def _write_uncached(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` and drops it from the page cache."""
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _reads_directly(path: Path, data: bytes) -> bool:
    """Reads ``path`` with read_chunks; whether it used O_DIRECT (the bytes must match)."""
    fd = os.open(path, os.O_RDONLY)
    chunks = _direct.read_chunks(fd, MiB)
    first = next(chunks)
    direct = bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)
    assert first + b"".join(chunks) == data
    with pytest.raises(OSError):
        os.fstat(fd)  # closed once read
    return direct


def test_large_uncached_files_are_read_directly(tmp_path: Path, direct_io_works: None) -> None:
    data = os.urandom(_direct.DIRECT_READ_MIN + 4097)
    _write_uncached(tmp_path / "big.bin", data)
    assert _reads_directly(tmp_path / "big.bin", data)


def test_cached_files_are_read_from_the_cache(tmp_path: Path, direct_io_works: None) -> None:
    data = os.urandom(_direct.DIRECT_READ_MIN + 4097)
    (tmp_path / "big.bin").write_bytes(data)  # still in the page cache
    assert not _reads_directly(tmp_path / "big.bin", data)


def test_a_reader_that_stops_early_releases_the_file(tmp_path: Path, direct_io_works: None) -> None:
    data = os.urandom(4 * _direct.BUFFER_BYTES)
    _write_uncached(tmp_path / "big.bin", data)
    fd = os.open(tmp_path / "big.bin", os.O_RDONLY)
    chunks = _direct.read_chunks(fd, MiB)
    assert next(chunks) == data[:MiB]
    chunks.close()  # the client went away: the read-ahead thread stops, the file is closed
    with pytest.raises(OSError):
        os.fstat(fd)


def test_direct_io_is_off_unless_switched_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(env.MLGRID_ARTIFACTS_DIRECT_IO.name, raising=False)
    assert not _direct.direct_io_enabled()
    monkeypatch.setenv(env.MLGRID_ARTIFACTS_DIRECT_IO.name, "1")
    assert _direct.direct_io_enabled() == hasattr(os, "O_DIRECT")


def test_without_direct_io_uncached_files_are_read_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(env.MLGRID_ARTIFACTS_DIRECT_IO.name, raising=False)
    data = os.urandom(_direct.DIRECT_READ_MIN + 1)
    _write_uncached(tmp_path / "big.bin", data)
    assert not _reads_directly(tmp_path / "big.bin", data)


def test_reading_a_directory_is_not_found(repository: FileArtifactRepository) -> None:
    repository.write_file("dir/file.txt", [b"x"])
    with pytest.raises(ResourceDoesNotExist):
        list(repository.read_file("dir"))


def test_a_batch_larger_than_a_group_stores_every_file_whole(
    repository: FileArtifactRepository,
) -> None:
    count = 2 * _batch.GROUP_FILES + 5
    files = [(f"d{i % 3}/f{i:04d}.txt", os.urandom(i % 700)) for i in range(count)]
    infos = repository.write_files(files)
    assert [(i.path, i.file_size) for i in infos] == [(p, len(d)) for p, d in files]
    for path, data in files:
        assert (repository.root / path).read_bytes() == data
        assert oct((repository.root / path).stat().st_mode & 0o777) == oct(0o644)
    assert _temp_files(repository.root) == []


def test_a_batch_replaces_existing_files(repository: FileArtifactRepository) -> None:
    repository.write_file("a.txt", [b"old"])
    repository.write_files([("a.txt", b"new"), ("b.txt", b"")])
    assert (repository.root / "a.txt").read_bytes() == b"new"
    assert (repository.root / "b.txt").read_bytes() == b""


def test_a_batch_naming_a_directory_stores_nothing(repository: FileArtifactRepository) -> None:
    repository.write_file("taken/inner.txt", [b"x"])
    with pytest.raises(InvalidParameterValue, match="'taken'"):
        repository.write_files([("first.txt", b"1"), ("taken", b"2")])
    assert not (repository.root / "first.txt").exists()
    assert _temp_files(repository.root) == []


def test_a_batch_under_a_file_stores_nothing(repository: FileArtifactRepository) -> None:
    repository.write_file("plain.txt", [b"x"])
    with pytest.raises(InvalidParameterValue, match=r"'plain\.txt/child'"):
        repository.write_files([("first.txt", b"1"), ("plain.txt/child", b"2")])
    assert not (repository.root / "first.txt").exists()


def test_a_batch_refuses_a_leaf_symlink_out_of_the_root(
    repository: FileArtifactRepository, tmp_path: Path
) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"secret")
    repository.write_file("sub/keep.txt", [b"k"])
    (repository.root / "sub" / "leak").symlink_to(outside)
    with pytest.raises(InvalidParameterValue, match="'sub/leak'"):
        repository.write_files([("sub/ok.txt", b"1"), ("sub/leak", b"evil")])
    assert outside.read_bytes() == b"secret"
    assert not (repository.root / "sub" / "ok.txt").exists()


def test_a_batch_follows_a_symlinked_directory_inside_the_root(
    repository: FileArtifactRepository,
) -> None:
    repository.write_file("real/x.txt", [b"x"])
    (repository.root / "alias").symlink_to(repository.root / "real", target_is_directory=True)
    repository.write_files([("alias/y.txt", b"y")])
    assert (repository.root / "real" / "y.txt").read_bytes() == b"y"


def test_a_failed_group_removes_its_temp_files(tmp_path: Path) -> None:
    (tmp_path / "ok").mkdir()
    files = [(tmp_path / "ok" / f"{i}.txt", b"x") for i in range(5)]
    files.append((tmp_path / "missing-parent" / "x.txt", b"y"))  # its temp file cannot be made
    with pytest.raises(FileNotFoundError):
        _batch.store_small_files(files)
    assert list((tmp_path / "ok").iterdir()) == []
