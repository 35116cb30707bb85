"""The artifact repository interface: what a storage backend (file, s3, a plugin's) implements.

The artifacts service checks every client path (``mlgrid_services.common.paths``) before it
reaches a repository, so implementations receive normalised relative paths: ``/``-separated, no
``..``, no leading ``/``; ``""`` names the repository root. Bytes move as iterables of chunks in
both directions so that any size streams with flat memory.

Plugins subclass :class:`ArtifactRepository` and register it for a URI scheme under the
``mlgrid.artifact_repository`` entry-point group; the constructor receives the root URI.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import grpc

from mlgrid.exceptions import InvalidParameterValue

#: Chunk size for streamed reads and writes: large enough to amortise per-message costs, small
#: enough to keep memory flat.
CHUNK_SIZE = 1024 * 1024
#: Threads the default :meth:`ArtifactRepository.write_files` stores files with (shared).
BATCH_WRITERS = 16

_batch_pool: ThreadPoolExecutor | None = None
_batch_pool_lock = threading.Lock()


def _batch_writers() -> ThreadPoolExecutor:
    """The shared pool, started on first use (clients that never serve batches start none)."""
    global _batch_pool
    with _batch_pool_lock:
        if _batch_pool is None:
            _batch_pool = ThreadPoolExecutor(BATCH_WRITERS, thread_name_prefix="artifact-batch")
        return _batch_pool


@dataclass(frozen=True)
class FileInfo:
    """One file or directory of a repository (MLflow's FileInfo)."""

    #: Path relative to the repository root, ``/``-separated.
    path: str
    #: True for a directory.
    is_dir: bool
    #: Size in bytes; None for directories.
    file_size: int | None = None


@dataclass(frozen=True)
class UploadedPart:
    """A stored part of a multipart upload."""

    part_number: int
    etag: str
    size: int = 0


@dataclass(frozen=True)
class PartCredential:
    """A presigned URL to PUT one part to, with the headers to send."""

    part_number: int
    url: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MultipartUpload:
    """A started multipart upload; ``credentials`` is empty when parts go through the service."""

    upload_id: str
    credentials: list[PartCredential] = field(default_factory=list)


@dataclass(frozen=True)
class PresignedUrl:
    """A URL that allows one GET or PUT without further credentials."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)


class UnsupportedOperation(InvalidParameterValue):
    """The backend cannot do this (e.g. presigned URLs on a local directory)."""

    grpc_status = grpc.StatusCode.FAILED_PRECONDITION


class ArtifactRepository(ABC):
    """Storage for the artifacts below one root URI (``file:///…``, ``s3://bucket/prefix``, …)."""

    #: True when :meth:`presigned_url` and presigned multipart part URLs work.
    supports_presigned_urls: bool = False

    def __init__(self, artifact_uri: str) -> None:
        #: The root URI every path is relative to.
        self.artifact_uri = artifact_uri

    # -- the primitives a backend implements -------------------------------------------------

    def check_path(self, path: str) -> None:
        """Refuses (InvalidParameterValue) a path this backend cannot safely use, e.g. one that
        leads out of the root through a symlink. Called before batches are written."""
        return  # object stores have no symlinks: every checked relative path is fine

    @abstractmethod
    def write_file(self, path: str, chunks: Iterable[bytes]) -> FileInfo:
        """Stores ``chunks`` under ``path``; it appears only once every chunk has arrived.

        If iterating ``chunks`` raises (the client went away, a checksum failed), nothing is left
        under ``path`` and the exception propagates.
        """

    def write_files(self, files: Sequence[tuple[str, bytes]]) -> list[FileInfo]:
        """Stores several small files (``(path, bytes)`` pairs, distinct paths); each appears
        whole or not at all. Every path is checked (as :meth:`check_path`) before any is written.

        The default writes them concurrently with :meth:`write_file`, so per-file round trips (an
        object store's PUTs) overlap; backends with a cheaper bulk path override it.
        """
        for path, _ in files:
            self.check_path(path)
        pool = _batch_writers()
        jobs = [pool.submit(self.write_file, path, [data] if data else []) for path, data in files]
        return [job.result() for job in jobs]

    @abstractmethod
    def read_file(self, path: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The bytes of the file at ``path`` in chunks; ResourceDoesNotExist if it is absent."""

    @abstractmethod
    def stat(self, path: str) -> FileInfo | None:
        """The file or directory at ``path`` (``""``: the root, which may itself be a file)."""

    @abstractmethod
    def list_artifacts(self, path: str = "") -> list[FileInfo]:
        """Direct children of the directory ``path``, sorted by path; [] when it is absent."""

    def list_artifacts_page(self, path: str, after: str, limit: int) -> list[FileInfo]:
        """The first ``limit`` (> 0) of :meth:`list_artifacts`' entries whose path sorts after
        ``after`` ("": from the start): one page of a paged listing. The default lists the
        whole directory; backends that can start a listing at a key (a sorted directory read
        that stats only the page, S3's StartAfter) override it, so paging through a directory
        costs a listing, not a listing per page."""
        return [info for info in self.list_artifacts(path) if info.path > after][:limit]

    @abstractmethod
    def walk_files(self, path: str = "") -> Iterator[FileInfo]:
        """Every file below ``path`` at any depth, sorted by path (directories are implied)."""

    def walk_files_page(self, path: str, after: str, limit: int) -> list[FileInfo]:
        """The first ``limit`` (> 0) of :meth:`walk_files`' files whose path sorts after
        ``after`` ("": from the start): one page of a paged recursive listing. The default walks
        from the start; backends that can start a walk at a key override it."""
        return list(islice((info for info in self.walk_files(path) if info.path > after), limit))

    @abstractmethod
    def delete_artifacts(self, path: str = "") -> None:
        """Deletes the file or the subtree at ``path`` (everything when ``""``)."""

    # -- multipart uploads and presigned URLs: object stores override these --------------------

    def create_multipart_upload(
        self, path: str, num_parts: int = 0, expires_in: int = 900
    ) -> MultipartUpload:
        """Starts a multipart upload to ``path``; with ``num_parts``, presigned part URLs."""
        raise UnsupportedOperation(f"{self._kind()} does not support multipart uploads")

    def upload_part(
        self, path: str, upload_id: str, part_number: int, chunks: Iterable[bytes]
    ) -> UploadedPart:
        """Stores one part (1-based ``part_number``); uploading a number again replaces it."""
        raise UnsupportedOperation(f"{self._kind()} does not support multipart uploads")

    def list_uploaded_parts(self, path: str, upload_id: str) -> list[UploadedPart]:
        """The parts stored so far, by part number, so an interrupted client can resume."""
        raise UnsupportedOperation(f"{self._kind()} does not support multipart uploads")

    def complete_multipart_upload(
        self, path: str, upload_id: str, parts: list[UploadedPart]
    ) -> FileInfo:
        """Assembles ``parts`` (in order) into the file at ``path``."""
        raise UnsupportedOperation(f"{self._kind()} does not support multipart uploads")

    def abort_multipart_upload(self, path: str, upload_id: str) -> None:
        """Discards an upload and its parts."""
        raise UnsupportedOperation(f"{self._kind()} does not support multipart uploads")

    def presigned_url(self, path: str, method: str = "GET", expires_in: int = 900) -> PresignedUrl:
        """A URL for a direct ``GET`` or ``PUT`` of ``path``."""
        raise UnsupportedOperation(
            f"{self._kind()} does not offer presigned URLs; transfer through the service instead"
        )

    def _kind(self) -> str:
        return f"artifact repository {type(self).__name__} ({self.artifact_uri})"

    # -- MLflow's convenience methods, built on the primitives ---------------------------------

    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        """Uploads one local file to ``artifact_path/<its name>``."""
        name = os.path.basename(local_file)
        target = f"{artifact_path.strip('/')}/{name}" if artifact_path else name
        self.write_file(target, _read_chunks(Path(local_file)))

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        """Uploads every file below ``local_dir`` to ``artifact_path``, keeping the tree."""
        base = Path(local_dir)
        prefix = artifact_path.strip("/") if artifact_path else ""
        for file in sorted(p for p in base.rglob("*") if p.is_file()):
            relative = file.relative_to(base).as_posix()
            self.write_file(f"{prefix}/{relative}" if prefix else relative, _read_chunks(file))

    def download_artifacts(self, artifact_path: str, dst_path: str) -> str:
        """Downloads a file or a directory below the root into ``dst_path``; returns the local path."""
        info = self.stat(artifact_path)
        if info is None:
            from mlgrid.exceptions import ResourceDoesNotExist

            raise ResourceDoesNotExist(f"artifact {artifact_path!r} does not exist")
        destination = Path(dst_path)
        if not info.is_dir:
            local = destination / os.path.basename(info.path or artifact_path)
            _write_chunks(local, self.read_file(artifact_path))
            return str(local)
        root = destination / os.path.basename(artifact_path) if artifact_path else destination
        prefix = f"{artifact_path}/" if artifact_path else ""
        for item in self.walk_files(artifact_path):
            _write_chunks(root / item.path[len(prefix) :], self.read_file(item.path))
        root.mkdir(parents=True, exist_ok=True)
        return str(root)


def _read_chunks(path: Path, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            yield chunk


def _write_chunks(path: Path, chunks: Iterable[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
