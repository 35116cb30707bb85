"""Artifacts domain logic: check what clients name, pick the repository, verify what arrives.

Every artifact URI and path is checked here (``mlgrid_services.common.paths``) before any
repository sees it, so a hostile request is refused before anything is written or read. Every
root, of any scheme, must also be allowed by the deployment's location policy
(``mlgrid_services.common.location_policy``: the default artifact root and
``MLGRID_ARTIFACTS_ALLOWED_ROOTS``), so a client cannot point the service at ``file:///etc``, at
someone else's bucket, or at local files through a plugin's repository.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mlgrid.artifacts.repository import (
    ArtifactRepository,
    FileInfo,
    MultipartUpload,
    PresignedUrl,
    UploadedPart,
)
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist
from mlgrid.limits import MAX_BATCH_FILES
from mlgrid.plugins import SchemeRegistry
from mlgrid.store.paging import decode_page_key, encode_page_key
from mlgrid_services.common.location_policy import DeploymentPolicy
from mlgrid_services.common.paths import check_relative_path, check_uri

from .hashing import StreamDigest
from .repositories import ARTIFACT_REPOSITORIES
from .repositories.file import RESERVED_PREFIX

_CACHE_SIZE = 256
_MAX_EXPIRY = 7 * 24 * 3600


@dataclass(frozen=True)
class DownloadItem:
    """One file of a download: its path relative to what was asked for, size and bytes."""

    path: str
    file_size: int
    chunks: Iterator[bytes]


class ArtifactsDomain:
    """What the ArtifactsService does, independent of gRPC."""

    def __init__(
        self,
        policy: DeploymentPolicy | None,
        registry: SchemeRegistry[ArtifactRepository] = ARTIFACT_REPOSITORIES,
    ) -> None:
        #: Which roots clients may name (None: any); keeps file:///etc out of reach.
        self._policy = policy
        self._registry = registry
        self._repositories: OrderedDict[str, ArtifactRepository] = OrderedDict()
        self._lock = threading.Lock()

    # -- checks --------------------------------------------------------------------------------

    def repository(self, artifact_uri: str) -> ArtifactRepository:
        """The repository for a checked root URI (cached: S3 clients keep connection pools)."""
        with self._lock:
            cached = self._repositories.get(artifact_uri)
            if cached is not None:
                self._repositories.move_to_end(artifact_uri)
                return cached
        policy = self._policy.current() if self._policy is not None else None
        parsed = check_uri(artifact_uri, "artifact_uri")
        repository_class = self._registry.get(parsed.scheme)  # an unknown scheme says so first
        if policy is not None:
            policy.check(artifact_uri, "artifact_uri")
        repository = repository_class(artifact_uri)
        local = getattr(repository, "root", None)
        if policy is not None and not parsed.is_local and isinstance(local, Path):
            # A plugin's repository that keeps files locally: those files must be allowed too.
            policy.check_local_mapping(artifact_uri, local, "artifact_uri")
        with self._lock:
            self._repositories[artifact_uri] = repository
            if len(self._repositories) > _CACHE_SIZE:
                self._repositories.popitem(last=False)
        return repository

    @staticmethod
    def path(path: str, field: str = "path", *, allow_empty: bool = True) -> str:
        """A checked, normalised relative path; names the service keeps for itself are refused."""
        normalised = check_relative_path(path, field, allow_empty=allow_empty)
        if any(segment.startswith(RESERVED_PREFIX) for segment in normalised.split("/")):
            raise InvalidParameterValue(
                f"{field} {path!r} is not allowed: names starting with {RESERVED_PREFIX!r} are "
                "reserved for the service"
            )
        return normalised

    # -- operations ----------------------------------------------------------------------------

    def upload(
        self,
        artifact_uri: str,
        path: str,
        chunks: Iterable[bytes],
        file_size: int | None = None,
        sha256: str = "",
        ended: Callable[[], bool] = lambda: False,
    ) -> tuple[FileInfo, str]:
        """Stores a streamed file once it is known to be complete (see :func:`_complete`);
        returns it and, when ``sha256`` was given (and matched), its sha256."""
        repository = self.repository(artifact_uri)
        target = self.path(path, allow_empty=False)
        checked = _complete(chunks, f"upload of {target!r}", file_size, ended)
        if not sha256:
            return repository.write_file(target, checked), ""
        digest = StreamDigest()
        info = repository.write_file(
            target, _sha_checked(digest.feed(checked), digest, sha256, target)
        )
        return info, digest.hexdigest()

    def upload_many(self, artifact_uri: str, files: list[tuple[str, bytes]]) -> list[FileInfo]:
        """Stores several small files; every path is checked before the first is written."""
        repository = self.repository(artifact_uri)
        if len(files) > MAX_BATCH_FILES:
            raise InvalidParameterValue(
                f"files has {len(files)} entries; send at most {MAX_BATCH_FILES} per call"
            )
        targets = [
            self.path(path, f"files[{i}].path", allow_empty=False)
            for i, (path, _) in enumerate(files)
        ]
        if len(set(targets)) != len(targets):  # a set, not list.count: 10,000 files are fine
            counts = Counter(targets)
            duplicate = min(t for t, n in counts.items() if n > 1)
            raise InvalidParameterValue(f"files names {duplicate!r} more than once")
        # The repository checks every path (symlinks) before it writes any.
        return repository.write_files(
            [(target, data) for target, (_, data) in zip(targets, files, strict=True)]
        )

    def download(self, artifact_uri: str, path: str) -> Iterator[DownloadItem]:
        """The file at ``path``, or every file below the directory at ``path``."""
        repository = self.repository(artifact_uri)
        source = self.path(path)
        info = repository.stat(source)
        if info is None:
            raise ResourceDoesNotExist(f"artifact {path!r} does not exist below {artifact_uri!r}")
        if not info.is_dir:
            name = info.path.rsplit("/", 1)[-1]
            yield DownloadItem(name, info.file_size or 0, repository.read_file(source))
            return
        prefix = f"{source}/" if source else ""
        for item in repository.walk_files(source):
            relative = item.path[len(prefix) :]
            yield DownloadItem(relative, item.file_size or 0, repository.read_file(item.path))

    def list_artifacts(
        self,
        artifact_uri: str,
        path: str,
        page_size: int = 0,
        page_token: str = "",
        recursive: bool = False,
    ) -> tuple[list[FileInfo], str]:
        """Direct children (or, recursively, every file) of ``path``, paged by path."""
        repository = self.repository(artifact_uri)
        directory = self.path(path)
        if page_size < 0:
            raise InvalidParameterValue(f"page_size {page_size} is not allowed: use 0 or more")
        after = decode_page_key(page_token, "artifact listing")
        if recursive and page_size:
            # One more than the page: whether another page follows.
            infos = repository.walk_files_page(directory, after, page_size + 1)
        elif recursive:
            infos = [info for info in repository.walk_files(directory) if info.path > after]
        elif page_size:
            # One more than the page: whether another page follows.
            infos = repository.list_artifacts_page(directory, after, page_size + 1)
        else:
            infos = [info for info in repository.list_artifacts(directory) if info.path > after]
        if page_size and len(infos) > page_size:
            infos = infos[:page_size]
            return infos, encode_page_key(infos[-1].path, "artifact listing")
        return infos, ""

    def delete(self, artifact_uri: str, path: str) -> None:
        self.repository(artifact_uri).delete_artifacts(self.path(path))

    def create_multipart_upload(
        self, artifact_uri: str, path: str, num_parts: int, expires_in: int = 900
    ) -> MultipartUpload:
        if not 0 <= num_parts <= 10_000:
            raise InvalidParameterValue(f"num_parts {num_parts} is not allowed: use 0 to 10000")
        repository = self.repository(artifact_uri)
        return repository.create_multipart_upload(
            self.path(path, allow_empty=False), num_parts, expires_in
        )

    def upload_part(
        self,
        artifact_uri: str,
        path: str,
        upload_id: str,
        part_number: int,
        chunks: Iterable[bytes],
        part_size: int | None = None,
        ended: Callable[[], bool] = lambda: False,
    ) -> UploadedPart:
        repository = self.repository(artifact_uri)
        target = self.path(path, allow_empty=False)
        if not 1 <= part_number <= 10_000:
            raise InvalidParameterValue(f"part_number {part_number} is not allowed: use 1 to 10000")
        label = f"part {part_number} of {target!r}"
        checked = _complete(chunks, label, part_size, ended)
        return repository.upload_part(target, _upload_id(upload_id), part_number, checked)

    def list_uploaded_parts(
        self, artifact_uri: str, path: str, upload_id: str
    ) -> list[UploadedPart]:
        repository = self.repository(artifact_uri)
        return repository.list_uploaded_parts(
            self.path(path, allow_empty=False), _upload_id(upload_id)
        )

    def complete_multipart_upload(
        self, artifact_uri: str, path: str, upload_id: str, parts: list[UploadedPart]
    ) -> FileInfo:
        repository = self.repository(artifact_uri)
        return repository.complete_multipart_upload(
            self.path(path, allow_empty=False), _upload_id(upload_id), parts
        )

    def abort_multipart_upload(self, artifact_uri: str, path: str, upload_id: str) -> None:
        repository = self.repository(artifact_uri)
        repository.abort_multipart_upload(self.path(path, allow_empty=False), _upload_id(upload_id))

    def presigned_url(
        self, artifact_uri: str, path: str, method: str, expires_in: int = 900
    ) -> PresignedUrl:
        if not 0 < expires_in <= _MAX_EXPIRY:
            raise InvalidParameterValue(
                f"expires_in_seconds {expires_in} is not allowed: use 1 to {_MAX_EXPIRY}"
            )
        repository = self.repository(artifact_uri)
        return repository.presigned_url(self.path(path, allow_empty=False), method, expires_in)


def _complete(
    chunks: Iterable[bytes],
    label: str,
    size: int | None,
    ended: Callable[[], bool],
) -> Iterator[bytes]:
    """Passes ``chunks`` on, raising (so the repository stores nothing) unless the stream is
    known to be whole: ``size`` bytes arrived, or, without a size, the sender marked its end.

    A stream whose client was killed ends like a finished one on the server side, so the
    end of the iteration alone proves nothing.
    """
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if size is not None and received > size:
            raise InvalidParameterValue(f"{label} sent more than the declared {size} bytes")
        yield chunk
    if size is not None and received != size:
        raise InvalidParameterValue(
            f"{label} ended after {received} of the declared {size} bytes; nothing was stored"
        )
    if size is None and not ended():
        raise InvalidParameterValue(
            f"{label} ended without a declared size or a final message with last=true, so it "
            "may have been cut short; nothing was stored"
        )


def _sha_checked(
    chunks: Iterator[bytes], digest: StreamDigest, expected: str, target: str
) -> Iterator[bytes]:
    yield from chunks
    if expected and digest.hexdigest() != expected.lower():
        raise InvalidParameterValue(
            f"upload of {target!r} has sha256 {digest.hexdigest()}, not {expected.lower()}; "
            "nothing was stored"
        )


def _upload_id(upload_id: str) -> str:
    if not upload_id or any(c in upload_id for c in "/\\\x00?#") or len(upload_id) > 1024:
        raise InvalidParameterValue(
            f"upload_id {upload_id!r} is not allowed: pass the id CreateMultipartUpload returned"
        )
    return upload_id
