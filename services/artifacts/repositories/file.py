"""The ``file`` repository: artifacts in a local directory.

Writes go to a hidden temp file in the destination's directory, are fsynced, then renamed over
the final name (and the directory fsynced), so a killed upload never leaves a partial file under
that name. Batches of small files share their syncing work (``_batch``); large files can be
written and read with direct I/O (``_direct``, opt-in). Multipart parts
live under a hidden staging directory at the root until they are assembled. Hidden names
(``.mlgrid-…``) never show in listings and cannot be named by clients.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from stat import S_ISDIR

from mlgrid.artifacts.repository import (
    CHUNK_SIZE,
    ArtifactRepository,
    FileInfo,
    MultipartUpload,
    PresignedUrl,
    UploadedPart,
)
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist
from mlgrid_services.common.paths import check_uri, resolve_inside

from ._atomic import write_atomically
from ._batch import store_small_files
from ._direct import read_chunks
from ._sorted_names import sorted_names

#: Prefix of every name this backend keeps for itself (temp files, multipart staging).
RESERVED_PREFIX = ".mlgrid-"
STAGING_DIR = ".mlgrid-multipart"
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


def _join(base: str, name: str) -> str:
    return f"{base}/{name}" if base else name


class FileArtifactRepository(ArtifactRepository):
    """Artifacts below a local directory named by a ``file://`` URI (or an absolute path)."""

    def __init__(self, artifact_uri: str) -> None:
        super().__init__(artifact_uri)
        self.root = check_uri(artifact_uri).local_path()
        # Resolved once: every path is checked against it, so symlinks inside can't escape.
        self._real_root = Path(os.path.realpath(self.root))

    # -- helpers -------------------------------------------------------------------------------

    def _local(self, path: str) -> Path:
        return resolve_inside(self._real_root, path, root_is_real=True)

    def _visible(self, entry: os.DirEntry[str]) -> bool:
        """Hides reserved names and symlinks that lead out of the root."""
        if entry.name.startswith(RESERVED_PREFIX):
            return False
        if entry.is_symlink():
            real_root = str(self._real_root)
            real = os.path.realpath(entry.path)
            return real == real_root or real.startswith(real_root + os.sep)
        return True

    def _local_many(self, paths: Sequence[str]) -> list[Path]:
        """:meth:`_local` of each path, resolving each distinct parent directory only once.

        A leaf that is not a symlink lies inside the root exactly when its parent does; a
        symlink leaf gets the full check.
        """
        parents: dict[str, Path] = {}
        targets = []
        for path in paths:
            parent, _, name = path.rpartition("/")
            local_parent = parents.get(parent)
            if local_parent is None:
                try:
                    local_parent = parents[parent] = self._local(parent)
                except InvalidParameterValue:
                    self._local(path)  # refuses it too, naming the path the client sent
                    raise
            target = local_parent / name
            if os.path.islink(target):
                target = self._local(path)
            targets.append(target)
        return targets

    @staticmethod
    def _prepare(target: Path, label: str, make_parent: bool = True) -> None:
        """Creates ``target``'s parents; refuses a target that is a directory or under a file."""
        try:
            if make_parent:
                target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise InvalidParameterValue(
                f"path {label!r} cannot be written: a parent of it is a file"
            ) from None
        if target.is_dir():
            raise InvalidParameterValue(f"path {label!r} cannot be written: it is a directory")

    def _write_atomically(self, target: Path, chunks: Iterable[bytes], label: str) -> int:
        """Streams ``chunks`` into a temp file next to ``target``, fsyncs, renames; returns size."""
        self._prepare(target, label)
        return write_atomically(target, chunks)

    # -- primitives ----------------------------------------------------------------------------

    def check_path(self, path: str) -> None:
        self._local(path)

    def write_file(self, path: str, chunks: Iterable[bytes]) -> FileInfo:
        if not path:
            raise InvalidParameterValue("path '' is not allowed for an upload: name the file")
        size = self._write_atomically(self._local(path), chunks, path)
        return FileInfo(path=path, is_dir=False, file_size=size)

    def write_files(self, files: Sequence[tuple[str, bytes]]) -> list[FileInfo]:
        targets = self._local_many([path for path, _ in files])
        made: set[Path] = set()
        for target, (path, _) in zip(targets, files, strict=True):
            self._prepare(target, path, make_parent=target.parent not in made)
            made.add(target.parent)
        store_small_files([(t, data) for t, (_, data) in zip(targets, files, strict=True)])
        return [FileInfo(path=path, is_dir=False, file_size=len(data)) for path, data in files]

    def read_file(self, path: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        local = self._local(path)
        try:
            fd = os.open(local, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ResourceDoesNotExist(f"artifact file {path!r} does not exist") from None
        if S_ISDIR(os.fstat(fd).st_mode):  # open() accepts directories; reading them fails
            os.close(fd)
            raise ResourceDoesNotExist(f"artifact file {path!r} does not exist")
        yield from read_chunks(fd, chunk_size)

    def stat(self, path: str) -> FileInfo | None:
        local = self._local(path)
        try:
            info = local.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if local.is_dir():
            return FileInfo(path=path, is_dir=True, file_size=None)
        return FileInfo(path=path or local.name, is_dir=False, file_size=info.st_size)

    def list_artifacts(self, path: str = "") -> list[FileInfo]:
        local = self._local(path)
        try:
            entries = [e for e in os.scandir(local) if self._visible(e)]
        except (FileNotFoundError, NotADirectoryError):
            return []
        infos = []
        for entry in entries:
            if entry.is_dir():
                infos.append(FileInfo(_join(path, entry.name), True, None))
            else:
                infos.append(FileInfo(_join(path, entry.name), False, entry.stat().st_size))
        infos.sort(key=lambda info: info.path)
        return infos

    def list_artifacts_page(self, path: str, after: str, limit: int) -> list[FileInfo]:
        # Every entry shares the directory's prefix, so names compare as their paths do. A
        # key outside this directory sorts before every entry here or after every one.
        prefix = _join(path, "")
        if not after.startswith(prefix):
            if after > prefix:
                return []
            after = prefix
        local = self._local(path)
        try:
            names = sorted_names(str(local), self._visible, str(self._real_root))
        except (FileNotFoundError, NotADirectoryError):
            return []
        start = bisect.bisect_right(names, after[len(prefix) :])
        page = []
        for name in names[start:]:
            # Only the page's entries are stat'ed (following symlinks, as list_artifacts does).
            try:
                info = os.stat(local / name)
            except FileNotFoundError:
                continue  # removed since the directory was read
            if S_ISDIR(info.st_mode):
                page.append(FileInfo(_join(path, name), True, None))
            else:
                page.append(FileInfo(_join(path, name), False, info.st_size))
            if len(page) == limit:
                break
        return page

    def walk_files(self, path: str = "") -> Iterator[FileInfo]:
        return self._walk_after(path, "")

    def walk_files_page(self, path: str, after: str, limit: int) -> list[FileInfo]:
        return list(islice(self._walk_after(path, after), limit))

    def _walk_after(self, path: str, after: str) -> Iterator[FileInfo]:
        """The files below ``path`` whose paths sort after ``after``, in path order (a paged
        recursive listing resumes after its last path). A directory's files sort as
        "<dir>/...", so the directory takes its place as "<dir>/" among its siblings (after
        "model.pkl" and "model-2", not before them). A subtree wholly at or before ``after`` is
        skipped unread, and only the files yielded are stat'ed: a page costs the directories
        on its way, not the whole tree."""
        local = self._local(path)
        try:
            with os.scandir(local) as scan:
                # is_dir follows symlinks, as list_artifacts does; no stat for most entries.
                entries = [(e.name, e.is_dir()) for e in scan if self._visible(e)]
        except (FileNotFoundError, NotADirectoryError):
            return
        entries.sort(key=lambda entry: f"{entry[0]}/" if entry[1] else entry[0])
        for name, is_dir in entries:
            child = _join(path, name)
            if is_dir:
                inside = f"{child}/"
                # Every path below sorts before ``after``: it is past "<dir>/" and not in it.
                if after > inside and not after.startswith(inside):
                    continue
                yield from self._walk_after(child, after)
            elif child > after:
                try:
                    size = os.stat(local / name).st_size
                except FileNotFoundError:
                    continue  # removed since the directory was read
                yield FileInfo(child, False, size)

    def delete_artifacts(self, path: str = "") -> None:
        local = self._local(path)
        if not path:
            for entry in os.scandir(local) if local.is_dir() else []:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
            return
        if local.is_dir() and not local.is_symlink():
            shutil.rmtree(local)
        elif local.exists() or local.is_symlink():
            local.unlink()

    # -- multipart (parts go through the service; no presigned URLs on a local disk) -----------

    def _staging(self, path: str, upload_id: str) -> Path:
        if not _UPLOAD_ID.match(upload_id):
            raise InvalidParameterValue(
                f"upload_id {upload_id!r} is not allowed: expected the id CreateMultipartUpload returned"
            )
        staging = self.root / STAGING_DIR / upload_id
        try:
            target = (staging / "target").read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ResourceDoesNotExist(f"multipart upload {upload_id!r} does not exist") from None
        if target != path:
            raise InvalidParameterValue(
                f"path {path!r} does not match multipart upload {upload_id!r} (started for {target!r})"
            )
        return staging

    def create_multipart_upload(
        self, path: str, num_parts: int = 0, expires_in: int = 900
    ) -> MultipartUpload:
        if not path:
            raise InvalidParameterValue("path '' is not allowed for an upload: name the file")
        self._local(path)  # refuses symlink escapes before anything is staged
        upload_id = uuid.uuid4().hex
        staging = self.root / STAGING_DIR / upload_id
        staging.mkdir(parents=True)
        (staging / "target").write_text(path, encoding="utf-8")
        return MultipartUpload(upload_id=upload_id)

    def upload_part(
        self, path: str, upload_id: str, part_number: int, chunks: Iterable[bytes]
    ) -> UploadedPart:
        staging = self._staging(path, upload_id)
        if not 1 <= part_number <= 10_000:
            raise InvalidParameterValue(f"part_number {part_number} is not allowed: use 1 to 10000")
        digest = hashlib.sha256()

        def hashed() -> Iterator[bytes]:
            for chunk in chunks:
                digest.update(chunk)
                yield chunk

        part_file = staging / f"part-{part_number:05d}"
        size = self._write_atomically(part_file, hashed(), path)
        etag = digest.hexdigest()[:32]
        (staging / f"etag-{part_number:05d}").write_text(etag, encoding="utf-8")
        return UploadedPart(part_number=part_number, etag=etag, size=size)

    def list_uploaded_parts(self, path: str, upload_id: str) -> list[UploadedPart]:
        staging = self._staging(path, upload_id)
        parts = []
        for part_file in sorted(staging.glob("part-*")):
            number = int(part_file.name.split("-")[1])
            etag_file = staging / f"etag-{number:05d}"
            if not etag_file.exists():
                continue  # written, but its etag not yet: treat as not uploaded
            etag = etag_file.read_text(encoding="utf-8")
            parts.append(UploadedPart(number, etag, part_file.stat().st_size))
        return parts

    def complete_multipart_upload(
        self, path: str, upload_id: str, parts: list[UploadedPart]
    ) -> FileInfo:
        staging = self._staging(path, upload_id)
        stored = {p.part_number: p for p in self.list_uploaded_parts(path, upload_id)}
        if not parts:
            raise InvalidParameterValue("parts is empty: name the uploaded parts in order")
        numbers = [p.part_number for p in parts]
        if numbers != sorted(set(numbers)):
            raise InvalidParameterValue(f"parts {numbers} must be in ascending order, no repeats")
        for part in parts:
            found = stored.get(part.part_number)
            if found is None:
                raise InvalidParameterValue(f"part {part.part_number} was never uploaded")
            if part.etag and part.etag.strip('"') != found.etag:
                raise InvalidParameterValue(
                    f"part {part.part_number} etag {part.etag!r} does not match {found.etag!r}"
                )

        def assembled() -> Iterator[bytes]:
            for part in parts:
                with (staging / f"part-{part.part_number:05d}").open("rb") as handle:
                    while chunk := handle.read(CHUNK_SIZE):
                        yield chunk

        size = self._write_atomically(self._local(path), assembled(), path)
        shutil.rmtree(staging, ignore_errors=True)
        return FileInfo(path=path, is_dir=False, file_size=size)

    def presigned_url(self, path: str, method: str = "GET", expires_in: int = 900) -> PresignedUrl:
        self._local(path)  # a hostile path is refused as such, before "not supported"
        return super().presigned_url(path, method, expires_in)

    def abort_multipart_upload(self, path: str, upload_id: str) -> None:
        shutil.rmtree(self._staging(path, upload_id), ignore_errors=True)
