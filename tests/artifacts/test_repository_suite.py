"""One suite for every artifact repository backend (file, and s3 on moto or a real endpoint)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest

from mlgrid.artifacts.repository import ArtifactRepository, FileInfo, UploadedPart
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist

MiB = 1024 * 1024


def _chunks(data: bytes, size: int = MiB) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _read(repository: ArtifactRepository, path: str) -> bytes:
    return b"".join(repository.read_file(path))


def test_write_then_read_returns_the_same_bytes(repository: ArtifactRepository) -> None:
    data = os.urandom(3 * MiB + 17)
    info = repository.write_file("model/weights.bin", _chunks(data))
    assert info == FileInfo("model/weights.bin", False, len(data))
    assert hashlib.sha256(_read(repository, "model/weights.bin")).digest() == (
        hashlib.sha256(data).digest()
    )


def test_empty_file_round_trips(repository: ArtifactRepository) -> None:
    repository.write_file("empty.txt", iter([]))
    assert _read(repository, "empty.txt") == b""
    assert repository.stat("empty.txt") == FileInfo("empty.txt", False, 0)


def test_rewriting_a_file_replaces_it(repository: ArtifactRepository) -> None:
    repository.write_file("a.txt", [b"first version"])
    repository.write_file("a.txt", [b"second"])
    assert _read(repository, "a.txt") == b"second"


def test_list_shows_direct_children_sorted_with_sizes(repository: ArtifactRepository) -> None:
    for path, body in [("b.txt", b"bb"), ("a/x.txt", b"x"), ("a/deep/y.txt", b"yy"), ("c", b"")]:
        repository.write_file(path, [body])
    assert repository.list_artifacts("") == [
        FileInfo("a", True, None),
        FileInfo("b.txt", False, 2),
        FileInfo("c", False, 0),
    ]
    assert repository.list_artifacts("a") == [
        FileInfo("a/deep", True, None),
        FileInfo("a/x.txt", False, 1),
    ]
    assert repository.list_artifacts("missing") == []


def test_walk_files_lists_every_file_below_a_directory(repository: ArtifactRepository) -> None:
    for path in ["d/1.txt", "d/e/2.txt", "d/e/f/3.txt", "other.txt"]:
        repository.write_file(path, [path.encode()])
    assert [f.path for f in repository.walk_files("d")] == ["d/1.txt", "d/e/2.txt", "d/e/f/3.txt"]
    assert len(list(repository.walk_files(""))) == 4


def test_stat_tells_files_directories_and_absence_apart(repository: ArtifactRepository) -> None:
    repository.write_file("dir/f.bin", [b"12345"])
    assert repository.stat("dir/f.bin") == FileInfo("dir/f.bin", False, 5)
    assert repository.stat("dir") == FileInfo("dir", True, None)
    assert repository.stat("nope") is None


def test_reading_a_missing_file_is_not_found(repository: ArtifactRepository) -> None:
    with pytest.raises(ResourceDoesNotExist, match=r"missing\.bin"):
        _read(repository, "missing.bin")


def test_delete_removes_a_file_or_a_subtree(repository: ArtifactRepository) -> None:
    for path in ["keep.txt", "gone/a.txt", "gone/b/c.txt", "single.txt"]:
        repository.write_file(path, [b"x"])
    repository.delete_artifacts("gone")
    repository.delete_artifacts("single.txt")
    assert [f.path for f in repository.walk_files("")] == ["keep.txt"]
    repository.delete_artifacts("")
    assert repository.list_artifacts("") == []


def test_a_failing_stream_leaves_nothing_under_the_name(repository: ArtifactRepository) -> None:
    def broken() -> Iterator[bytes]:
        yield os.urandom(MiB)
        yield os.urandom(MiB)
        raise ConnectionAbortedError("client went away")

    with pytest.raises(ConnectionAbortedError):
        repository.write_file("partial.bin", broken())
    assert repository.stat("partial.bin") is None
    assert repository.list_artifacts("") == []


def test_a_failing_stream_keeps_the_previous_version(repository: ArtifactRepository) -> None:
    repository.write_file("model.bin", [b"good"])

    def broken() -> Iterator[bytes]:
        yield b"half of the new"
        raise ConnectionAbortedError("client went away")

    with pytest.raises(ConnectionAbortedError):
        repository.write_file("model.bin", broken())
    assert _read(repository, "model.bin") == b"good"


def test_multipart_upload_resumes_from_the_listed_parts(repository: ArtifactRepository) -> None:
    part_size = 5 * MiB  # S3's minimum for every part but the last
    data = os.urandom(2 * part_size + 123)
    pieces = [data[i : i + part_size] for i in range(0, len(data), part_size)]
    upload = repository.create_multipart_upload("big/model.bin")
    repository.upload_part("big/model.bin", upload.upload_id, 1, _chunks(pieces[0]))
    # The client is interrupted here; a new one asks what is done and continues.
    done = repository.list_uploaded_parts("big/model.bin", upload.upload_id)
    assert [(p.part_number, p.size) for p in done] == [(1, part_size)]
    assert repository.stat("big/model.bin") is None
    for number in (2, 3):
        repository.upload_part(
            "big/model.bin", upload.upload_id, number, _chunks(pieces[number - 1])
        )
    parts = repository.list_uploaded_parts("big/model.bin", upload.upload_id)
    assert [p.part_number for p in parts] == [1, 2, 3]
    info = repository.complete_multipart_upload("big/model.bin", upload.upload_id, parts)
    assert info.file_size == len(data)
    assert _read(repository, "big/model.bin") == data
    assert [f.path for f in repository.walk_files("")] == ["big/model.bin"]


def test_aborted_multipart_upload_leaves_nothing(repository: ArtifactRepository) -> None:
    upload = repository.create_multipart_upload("aborted.bin")
    repository.upload_part("aborted.bin", upload.upload_id, 1, [os.urandom(1000)])
    repository.abort_multipart_upload("aborted.bin", upload.upload_id)
    assert repository.stat("aborted.bin") is None
    assert repository.list_artifacts("") == []
    with pytest.raises(ResourceDoesNotExist):
        repository.list_uploaded_parts("aborted.bin", upload.upload_id)


def test_completing_with_a_wrong_etag_is_refused(repository: ArtifactRepository) -> None:
    upload = repository.create_multipart_upload("x.bin")
    repository.upload_part("x.bin", upload.upload_id, 1, [b"abc"])
    with pytest.raises(InvalidParameterValue):
        repository.complete_multipart_upload(
            "x.bin", upload.upload_id, [UploadedPart(1, "0" * 32, 3)]
        )
    assert repository.stat("x.bin") is None


def test_convenience_methods_upload_and_download_trees(
    repository: ArtifactRepository, tmp_path
) -> None:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("alpha")
    (source / "sub" / "b.txt").write_text("beta")
    repository.log_artifacts(str(source), "data")
    repository.log_artifact(str(source / "a.txt"))
    assert [f.path for f in repository.walk_files("")] == ["a.txt", "data/a.txt", "data/sub/b.txt"]
    local = repository.download_artifacts("data", str(tmp_path / "out"))
    assert (tmp_path / "out" / "data" / "sub" / "b.txt").read_text() == "beta"
    assert local == str(tmp_path / "out" / "data")


def _pages(list_page, directory: str, limit: int, most: int = 100) -> list[list[FileInfo]]:
    """The pages of a paged listing (up to ``most``), each starting after the previous page's
    last path."""
    pages: list[list[FileInfo]] = []
    after = ""
    while len(pages) < most:
        page = list_page(directory, after, limit)
        if not page:
            return pages
        pages.append(page)
        after = page[-1].path
    return pages


def test_paging_a_large_directory_returns_every_entry_once_in_order(
    repository: ArtifactRepository,
) -> None:
    # Names around "/" in sort order: "a" is a directory, so S3 keys it "a/", after "a.txt".
    tricky = ["a/inside.txt", "a.txt", "a-1", "a0", "a 2", "b/c/deep.txt", "b.c", "zz/x"]
    bulk = [f"d{i:05}.bin" for i in range(2_000)]
    files = [(f"big/{name}", name.encode()) for name in tricky + bulk]
    repository.write_files(files)
    whole = repository.list_artifacts("big")
    assert len(whole) == 2_008  # a, a.txt, a-1, a0, "a 2", b, b.c, zz and the 2,000
    assert [info.path for info in whole] == sorted(info.path for info in whole)
    assert whole[:6] == [
        FileInfo("big/a", True, None),
        FileInfo("big/a 2", False, 3),
        FileInfo("big/a-1", False, 3),
        FileInfo("big/a.txt", False, 5),
        FileInfo("big/a0", False, 2),
        FileInfo("big/b", True, None),
    ]
    # Few pages: a listing of this directory costs moto ~1 s.
    pages = _pages(repository.list_artifacts_page, "big", 333)
    assert [len(page) for page in pages] == [333] * 6 + [10]
    assert [info for page in pages for info in page] == whole
    # One entry a page across the names whose S3 keys sort differently from their paths.
    single = _pages(repository.list_artifacts_page, "big", 1, most=6)
    assert [info for page in single for info in page] == whole[:6]
    # The fallback a repository without its own paged listing gets (e.g. a plugin's).
    default = _pages(
        lambda *args: ArtifactRepository.list_artifacts_page(repository, *args), "big", 1_000
    )
    assert [len(page) for page in default] == [1_000, 1_000, 8]
    assert [info for page in default for info in page] == whole
    # The root, a key from another directory, and a directory that is not there.
    assert repository.list_artifacts_page("", "", 10) == [FileInfo("big", True, None)]
    assert repository.list_artifacts_page("big", "zzz", 10) == []
    assert repository.list_artifacts_page("big", "aaa", 2) == whole[:2]
    assert repository.list_artifacts_page("missing", "", 10) == []
