"""Moving bytes between local files and the artifacts service (any artifact URI).

Uploads stream a file in chunks (one UploadArtifact call per file); directories upload with a
thread pool. Large files to an object store go straight to it with presigned multipart URLs when
the backend offers them, so the bytes never pass through the service. Downloads list the tree
once (recursive ListArtifacts) and fetch the files in parallel.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlgrid import environment as env
from mlgrid.api.artifacts.v1 import artifacts_service_pb2 as pb
from mlgrid.artifacts.repository import CHUNK_SIZE, FileInfo
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist
from mlgrid.transport import Transport

#: Called with the number of bytes just transferred (for progress bars).
Progress = Callable[[int], None]


def multipart_threshold() -> int:
    """Files at least this large go direct to an object store when it offers presigned URLs."""
    return env.MLGRID_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE.get()


def multipart_chunk_size() -> int:
    """Part size of direct multipart uploads (S3 needs at least 5 MiB except the last)."""
    return max(5 * 1024 * 1024, env.MLGRID_MULTIPART_UPLOAD_CHUNK_SIZE.get())


def max_workers() -> int:
    """Parallel transfers for directories and multipart parts."""
    return env.MLGRID_ARTIFACT_TRANSFER_WORKERS.get()


def join_path(*parts: str | None) -> str:
    """Joins artifact path pieces with ``/``, dropping trailing slashes ("dir/" means "dir").

    A leading ``/`` is kept, so an absolute artifact path reaches the service and is refused
    there rather than silently turned into a relative one.
    """
    pieces = [p.rstrip("/") for p in parts if p and p.rstrip("/")]
    return "/".join(pieces[:1] + [p.lstrip("/") for p in pieces[1:]])


def _info(proto: pb.FileInfo) -> FileInfo:
    return FileInfo(proto.path, proto.is_dir, None if proto.is_dir else proto.file_size)


# -- uploads ---------------------------------------------------------------------------------


def _file_requests(
    artifact_uri: str, path: str, local_file: Path, size: int, progress: Progress | None
) -> Iterator[pb.UploadArtifactRequest]:
    with local_file.open("rb") as handle:
        # The first chunk rides in the first message: a small file is one message.
        chunk = handle.read(CHUNK_SIZE)
        yield pb.UploadArtifactRequest(
            artifact_uri=artifact_uri, path=path, file_size=size, data=chunk
        )
        if progress and chunk:
            progress(len(chunk))
        while chunk := handle.read(CHUNK_SIZE):
            yield pb.UploadArtifactRequest(data=chunk)
            if progress:
                progress(len(chunk))


def upload_file(
    transport: Transport,
    artifact_uri: str,
    local_file: str | os.PathLike[str],
    path: str,
    progress: Progress | None = None,
) -> FileInfo:
    """Uploads one local file to ``path`` below ``artifact_uri``."""
    source = Path(local_file)
    size = source.stat().st_size
    if size >= multipart_threshold() and urlsplit(artifact_uri).scheme not in ("", "file"):
        direct = _upload_direct(transport, artifact_uri, source, path, size, progress)
        if direct is not None:
            return direct
    requests = _file_requests(artifact_uri, path, source, size, progress)
    response = transport.call(transport.artifacts_for(artifact_uri).UploadArtifact, requests)
    return _info(response.file)


def upload_bytes(transport: Transport, artifact_uri: str, path: str, data: bytes) -> FileInfo:
    """Uploads ``data`` as the file ``path`` below ``artifact_uri``."""

    def requests() -> Iterator[pb.UploadArtifactRequest]:
        yield pb.UploadArtifactRequest(
            artifact_uri=artifact_uri, path=path, file_size=len(data), data=data[:CHUNK_SIZE]
        )
        for start in range(CHUNK_SIZE, len(data), CHUNK_SIZE):
            yield pb.UploadArtifactRequest(data=data[start : start + CHUNK_SIZE])

    response = transport.call(transport.artifacts_for(artifact_uri).UploadArtifact, requests())
    return _info(response.file)


def _local_files(base: Path) -> list[tuple[Path, int]]:
    """Every file below ``base`` (symlinks to files included, symlinked directories not
    entered, as ``rglob``) with its size, sorted by path: one stat per file."""
    found: list[tuple[str, Path, int]] = []
    for directory, _, names in os.walk(base):
        for name in names:
            local = os.path.join(directory, name)
            try:
                info = os.stat(local)
            except FileNotFoundError:  # a dangling symlink, or removed meanwhile
                continue
            if stat.S_ISREG(info.st_mode):
                found.append((os.path.relpath(local, base), Path(local), info.st_size))
    # Sorted by path components, as sorted(Path) would: "a/b" before "a-b".
    found.sort(key=lambda item: item[0].split(os.sep))
    return [(local, size) for _, local, size in found]


def upload_dir(
    transport: Transport,
    artifact_uri: str,
    local_dir: str | os.PathLike[str],
    artifact_path: str | None = None,
    progress: Progress | None = None,
) -> list[FileInfo]:
    """Uploads every file below ``local_dir`` (keeping the tree) with a thread pool."""
    base = Path(local_dir)
    if not base.is_dir():
        raise InvalidParameterValue(f"local_dir {str(local_dir)!r} is not a directory")
    jobs = [
        (f, join_path(artifact_path, f.relative_to(base).as_posix()), size)
        for f, size in _local_files(base)
    ]
    small = [(f, p, size) for f, p, size in jobs if size <= SMALL_FILE_BYTES]
    large = [(f, p) for f, p, size in jobs if size > SMALL_FILE_BYTES]
    batches = _batches(small, max(1, -(-len(small) // max_workers())))
    with ThreadPoolExecutor(max_workers=max_workers(), thread_name_prefix="mlgrid-upload") as pool:
        streamed = [
            pool.submit(upload_file, transport, artifact_uri, f, p, progress) for f, p in large
        ]
        batched = [
            pool.submit(_upload_batch, transport, artifact_uri, b, progress) for b in batches
        ]
        results = {info.path: info for job in batched for info in job.result()}
        results.update((job.result().path, job.result()) for job in streamed)
    return [results[p] for _, p, _ in jobs]


#: Files up to this size travel in batches (UploadArtifacts); larger ones stream one by one.
SMALL_FILE_BYTES = 256 * 1024
#: Bytes and files per batch: well under the message limit, enough to amortise a call.
BATCH_BYTES = 4 * 1024 * 1024
BATCH_FILES = 256


def _batches(files: list[tuple[Path, str, int]], spread: int) -> list[list[tuple[Path, str]]]:
    """Groups small files so every worker gets some, without exceeding a batch's limits."""
    per_batch = min(BATCH_FILES, max(16, spread))
    batches: list[list[tuple[Path, str]]] = []
    current: list[tuple[Path, str]] = []
    size = 0
    for local, path, length in files:
        if current and (len(current) >= per_batch or size + length > BATCH_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append((local, path))
        size += length
    if current:
        batches.append(current)
    return batches


def _upload_batch(
    transport: Transport,
    artifact_uri: str,
    files: list[tuple[Path, str]],
    progress: Progress | None,
) -> list[FileInfo]:
    entries = [pb.ArtifactFile(path=path, data=local.read_bytes()) for local, path in files]
    request = pb.UploadArtifactsRequest(artifact_uri=artifact_uri, files=entries)
    response = transport.call(transport.artifacts_for(artifact_uri).UploadArtifacts, request)
    if progress:
        progress(sum(len(entry.data) for entry in entries))
    return [_info(f) for f in response.files]


def _put_part(url: str, headers: dict[str, str], data: bytes) -> str:
    import urllib.request  # with http.client and email: only for presigned multipart uploads

    # urllib would label the body as a form otherwise, which some stores then parse away.
    request = urllib.request.Request(
        url,
        data=data,
        method="PUT",
        headers={"Content-Type": "application/octet-stream", **headers},
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        etag: str = response.headers.get("ETag", "")
    return etag.strip('"')


def _upload_direct(
    transport: Transport,
    artifact_uri: str,
    source: Path,
    path: str,
    size: int,
    progress: Progress | None,
) -> FileInfo | None:
    """Presigned multipart upload straight to the object store; None when not offered."""
    part_size = multipart_chunk_size()
    num_parts = max(1, -(-size // part_size))
    create = pb.CreateMultipartUploadRequest(
        artifact_uri=artifact_uri, path=path, num_parts=num_parts
    )
    try:
        started = transport.call(
            transport.artifacts_for(artifact_uri).CreateMultipartUpload, create
        )
    except InvalidParameterValue:
        return None  # the backend has no multipart uploads: stream through the service
    ids = {"artifact_uri": artifact_uri, "path": path, "upload_id": started.upload_id}
    if len(started.credentials) != num_parts:
        transport.call(
            transport.artifacts_for(artifact_uri).AbortMultipartUpload,
            pb.AbortMultipartUploadRequest(**ids),
        )
        return None

    def send(credential: pb.MultipartUploadCredential) -> pb.UploadedPart:
        with source.open("rb") as handle:
            handle.seek((credential.part_number - 1) * part_size)
            data = handle.read(part_size)
        etag = _put_part(credential.url, dict(credential.headers), data)
        if progress:
            progress(len(data))
        return pb.UploadedPart(part_number=credential.part_number, etag=etag, size=len(data))

    try:
        with ThreadPoolExecutor(
            max_workers=max_workers(), thread_name_prefix="mlgrid-part"
        ) as pool:
            parts = list(pool.map(send, started.credentials))
        done = transport.call(
            transport.artifacts_for(artifact_uri).CompleteMultipartUpload,
            pb.CompleteMultipartUploadRequest(**ids, parts=parts),
        )
    except BaseException:
        with contextlib.suppress(Exception):
            transport.call(
                transport.artifacts_for(artifact_uri).AbortMultipartUpload,
                pb.AbortMultipartUploadRequest(**ids),
            )
        raise
    return _info(done.file)


# -- listing ---------------------------------------------------------------------------------


def list_artifacts(
    transport: Transport, artifact_uri: str, path: str = "", recursive: bool = False
) -> list[FileInfo]:
    """Direct children of ``path`` (or every file below it), following pages."""
    infos: list[FileInfo] = []
    token = ""
    while True:
        request = pb.ListArtifactsRequest(
            artifact_uri=artifact_uri, path=path, page_token=token, recursive=recursive
        )
        response = transport.call(transport.artifacts_for(artifact_uri).ListArtifacts, request)
        infos.extend(_info(f) for f in response.files)
        token = response.next_page_token
        if not token:
            return infos


# -- downloads -------------------------------------------------------------------------------


def _stream_download(
    transport: Transport, request: pb.DownloadArtifactsRequest
) -> Iterator[pb.DownloadArtifactsResponse]:
    method: Any = transport.artifacts_for(request.artifact_uri).DownloadArtifacts
    messages: Iterator[pb.DownloadArtifactsResponse] = transport.stream(method, request)
    return messages


def _write_stream(
    transport: Transport,
    artifact_uri: str,
    path: str,
    destination: Callable[[str], Path],
    progress: Progress | None,
) -> list[Path]:
    """Runs one DownloadArtifacts stream, writing each file it carries; returns the files."""
    request = pb.DownloadArtifactsRequest(artifact_uri=artifact_uri, path=path)
    written: list[Path] = []
    handle: Any = None
    try:
        for message in _stream_download(transport, request):
            if message.path:
                if handle is not None:
                    handle.close()
                target = destination(message.path)
                target.parent.mkdir(parents=True, exist_ok=True)
                handle = target.open("wb")
                written.append(target)
            data = message.data  # each access copies the bytes out of the message: once
            if data:
                handle.write(data)
                if progress:
                    progress(len(data))
    except BaseException:
        if handle is not None:
            handle.close()
            handle = None
            written[-1].unlink(missing_ok=True)  # never leave a truncated file behind
        raise
    finally:
        if handle is not None:
            handle.close()
    return written


def _local_target(base: Path, relative: str) -> Path:
    target = base.joinpath(*relative.split("/"))
    if base.resolve() not in target.resolve().parents:
        raise InvalidParameterValue(f"downloaded path {relative!r} would land outside {base}")
    return target


def download(
    transport: Transport,
    artifact_uri: str,
    path: str,
    local_target: str | os.PathLike[str],
    progress: Progress | None = None,
    file_target: Callable[[str], Path] | None = None,
) -> str:
    """Downloads the file or directory ``path`` to exactly ``local_target``; returns where it
    went. When ``path`` turns out to be a single file, ``file_target(<its name>)`` says where
    it goes instead (default: ``local_target``)."""
    target = Path(local_target)
    files = list_artifacts(transport, artifact_uri, path, recursive=True)
    if not files:
        # A single file, an empty directory, or nothing at all (NOT_FOUND from the service).
        place = file_target or (lambda _name: target)
        written = _write_stream(transport, artifact_uri, path, place, progress)
        if not written:
            target.mkdir(parents=True, exist_ok=True)
            return str(target)
        return str(written[0])
    prefix = f"{path.strip('/')}/" if path.strip("/") else ""
    target.mkdir(parents=True, exist_ok=True)

    def fetch(info: FileInfo) -> None:
        local = _local_target(target, info.path[len(prefix) :])
        _write_stream(transport, artifact_uri, info.path, lambda _name: local, progress)

    with ThreadPoolExecutor(max_workers=max_workers(), thread_name_prefix="mlgrid-dl") as pool:
        list(pool.map(fetch, files))
    return str(target)


def read_bytes(transport: Transport, artifact_uri: str, path: str = "") -> bytes:
    """The bytes of one artifact file (for load_text / load_dict)."""
    request = pb.DownloadArtifactsRequest(artifact_uri=artifact_uri, path=path)
    chunks: list[bytes] = []
    names = 0
    for message in _stream_download(transport, request):
        names += bool(message.path)
        if names > 1:
            raise InvalidParameterValue(f"artifact {path or artifact_uri!r} is a directory")
        chunks.append(message.data)
    if names == 0:
        raise ResourceDoesNotExist(f"artifact {path or artifact_uri!r} is an empty directory")
    return b"".join(chunks)


def fresh_download_dir() -> Path:
    """A new temporary directory for downloads without ``dst_path`` (as MLflow does)."""
    return Path(tempfile.mkdtemp(prefix="mlgrid-artifacts-"))


def remove_quietly(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
