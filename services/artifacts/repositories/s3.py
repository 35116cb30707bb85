"""The ``s3`` repository: artifacts in an S3 bucket (AWS, MinIO, moto), through the minio SDK.

Where to connect comes from the environment, as MLflow users expect:
``MLGRID_S3_ENDPOINT_URL`` (else ``MLFLOW_S3_ENDPOINT_URL``; unset means AWS),
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, and
``AWS_DEFAULT_REGION`` / ``AWS_REGION``; explicit :class:`S3Settings` override them.

Uploads stream as S3 multipart uploads (parts of ``PART_SIZE``) so memory stays flat for any
size; if the client goes away midway the upload is aborted and no object appears.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from itertools import islice
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

import certifi
import urllib3
from minio import Minio
from minio.datatypes import Part
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from mlgrid import environment
from mlgrid.artifacts.repository import (
    CHUNK_SIZE,
    ArtifactRepository,
    FileInfo,
    MultipartUpload,
    PartCredential,
    PresignedUrl,
    UploadedPart,
)
from mlgrid.exceptions import (
    InvalidParameterValue,
    ResourceDoesNotExist,
    TemporarilyUnavailable,
)
from mlgrid_services.common.paths import check_uri

#: Size of the parts a streamed upload is cut into (S3's minimum is 5 MiB).
PART_SIZE = 16 * 1024 * 1024
#: Largest part accepted through UploadPart (it is held in memory for the PUT).
MAX_SERVICE_PART_SIZE = 32 * 1024 * 1024
_NOT_FOUND = {"NoSuchKey", "NoSuchUpload", "NoSuchBucket", "ResourceNotFound"}


@dataclass(frozen=True)
class S3Settings:
    """How to reach S3; ``from_env`` reads MLflow's and AWS's variables."""

    #: ``http(s)://host:port``; None means AWS (s3.amazonaws.com).
    endpoint_url: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    region: str | None = None

    @classmethod
    def from_env(cls) -> S3Settings:
        env = os.environ
        return cls(
            endpoint_url=environment.MLGRID_S3_ENDPOINT_URL.get() or None,
            access_key=env.get("AWS_ACCESS_KEY_ID"),
            secret_key=env.get("AWS_SECRET_ACCESS_KEY"),
            session_token=env.get("AWS_SESSION_TOKEN"),
            region=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION"),
        )

    def client(self) -> Minio:
        endpoint, secure = "s3.amazonaws.com", True
        if self.endpoint_url:
            parts = urlsplit(self.endpoint_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise InvalidParameterValue(
                    f"S3 endpoint URL {self.endpoint_url!r} is not allowed: "
                    "use http(s)://host[:port]"
                )
            endpoint, secure = parts.netloc, parts.scheme == "https"
        return Minio(
            endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            session_token=self.session_token,
            secure=secure,
            # A fixed region spares a GetBucketLocation round trip per bucket.
            region=self.region or "us-east-1",
            http_client=_ExplainingPoolManager(self.endpoint_url),
        )


class _ExplainingPoolManager(urllib3.PoolManager):
    """minio's HTTP client with minio's settings, except that an endpoint that cannot be
    reached is reported at once (one connection retry, not five with backoff) and in one line
    that says where it tried and which setting chooses where to go."""

    def __init__(self, endpoint_url: str | None) -> None:
        timeout = timedelta(minutes=5).seconds
        super().__init__(
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            maxsize=10,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            retries=urllib3.Retry(
                total=5, connect=1, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
            ),
        )
        self._endpoint_url = endpoint_url

    # PoolManager's own signature, which urllib3's stubs declare narrower than RequestMethods'.
    def urlopen(  # type: ignore[override]
        self, method: str, url: str, redirect: bool = True, **kw: Any
    ) -> Any:
        try:
            return super().urlopen(method, url, redirect=redirect, **kw)
        except urllib3.exceptions.MaxRetryError as exc:
            reason = str(exc.reason)[:200]
            if self._endpoint_url is None:
                raise InvalidParameterValue(
                    "no S3 endpoint is configured (MLGRID_S3_ENDPOINT_URL or "
                    "MLFLOW_S3_ENDPOINT_URL on the artifacts service), so s3:// went to AWS, "
                    f"which cannot be reached from here ({reason}); set MLGRID_S3_ENDPOINT_URL "
                    "to your S3-compatible store (MinIO: http://host:9000)"
                ) from None
            raise TemporarilyUnavailable(
                f"the S3 endpoint {self._endpoint_url[:200]!r} (MLGRID_S3_ENDPOINT_URL) cannot "
                f"be reached ({reason})"
            ) from None


_clients: dict[S3Settings, Minio] = {}


def _client_for(settings: S3Settings) -> Minio:
    # One client (and its connection pool) per distinct setting, shared by every root.
    client = _clients.get(settings)
    if client is None:
        client = _clients[settings] = settings.client()
    return client


class _ChunkReader:
    """A file-like ``read(n)`` over an iterable of chunks (what minio's put_object wants)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = bytearray()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
            self.size += len(chunk)
        if size < 0:
            size = len(self._buffer)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data


#: Keys per ListObjectsV2 response: minio asks for S3's maximum, 1,000.
_LIST_RESPONSE_KEYS = 1_000


def _join(base: str, name: str) -> str:
    return f"{base}/{name}" if base else name


def _first(pair: tuple[str, FileInfo]) -> str:
    return pair[0]


def _lowest_unread(name: str) -> str:
    """The smallest name an entry listed after the one keyed ``name`` can have: a directory's
    key is its name plus "/", so it may be a prefix of ``name`` that a character below "/"
    follows; any other later entry sorts after ``name``."""
    for index, char in enumerate(name):
        if char < "/":
            return name[:index]
    return name


class S3ArtifactRepository(ArtifactRepository):
    """Artifacts below ``s3://bucket/prefix``."""

    supports_presigned_urls = True

    def __init__(self, artifact_uri: str, settings: S3Settings | None = None) -> None:
        super().__init__(artifact_uri)
        parsed = check_uri(artifact_uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise InvalidParameterValue(
                f"artifact_uri {artifact_uri!r} is not allowed: use s3://bucket[/prefix]"
            )
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.client = _client_for(settings or S3Settings.from_env())

    def _key(self, path: str) -> str:
        return "/".join(p for p in (self.prefix, path) if p)

    def _relative(self, key: str) -> str:
        return key[len(self.prefix) + 1 :] if self.prefix else key

    def _dir_prefix(self, path: str) -> str:
        key = self._key(path)
        return f"{key}/" if key else ""

    # -- primitives ----------------------------------------------------------------------------

    def write_file(self, path: str, chunks: Iterable[bytes]) -> FileInfo:
        if not path:
            raise InvalidParameterValue("path '' is not allowed for an upload: name the file")
        reader = _ChunkReader(chunks)
        # Unknown length: minio cuts the stream into parts and aborts the upload on any error.
        self.client.put_object(
            self.bucket, self._key(path), cast(BinaryIO, reader), -1, part_size=PART_SIZE
        )
        return FileInfo(path=path, is_dir=False, file_size=reader.size)

    def read_file(self, path: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        try:
            response = self.client.get_object(self.bucket, self._key(path))
        except S3Error as err:
            if err.code in _NOT_FOUND:
                raise ResourceDoesNotExist(f"artifact file {path!r} does not exist") from None
            raise
        try:
            yield from response.stream(chunk_size)
        finally:
            response.close()
            response.release_conn()

    def stat(self, path: str) -> FileInfo | None:
        key = self._key(path)
        if key:
            try:
                found = self.client.stat_object(self.bucket, key)
                name = path or key.rsplit("/", 1)[-1]
                return FileInfo(path=name, is_dir=False, file_size=found.size)
            except S3Error as err:
                if err.code not in _NOT_FOUND:
                    raise
        for _ in self.client.list_objects(self.bucket, prefix=self._dir_prefix(path)):
            return FileInfo(path=path, is_dir=True, file_size=None)
        return FileInfo(path=path, is_dir=True) if not key else None

    def list_artifacts(self, path: str = "") -> list[FileInfo]:
        infos = []
        for obj in self.client.list_objects(self.bucket, prefix=self._dir_prefix(path)):
            name = self._relative(obj.object_name.rstrip("/"))
            if obj.is_dir:
                infos.append(FileInfo(name, True, None))
            else:
                infos.append(FileInfo(name, False, obj.size))
        infos.sort(key=lambda info: info.path)
        return infos

    def list_artifacts_page(self, path: str, after: str, limit: int) -> list[FileInfo]:
        # S3 lists from StartAfter in key order. A directory's key is its name plus "/", so key
        # order is path order except that a directory comes after the siblings that extend its
        # name with a character below "/" ("a.txt" before "a/", though "a" < "a.txt"). And each
        # response carries its files first and its directories after them. So the listing
        # reads on until no entry keyed before the one just read can still sort into the page,
        # then to the end of that response (at most a response more), and stops.
        prefix = self._dir_prefix(path)
        page: list[tuple[str, FileInfo]] = []  # (name, info): the smallest names read so far
        objects = self.client.list_objects(
            self.bucket, prefix=prefix, start_after=self._key(after) if after else None
        )
        rest: int | None = None  # entries still to read once the page is settled
        for obj in objects:
            name = obj.object_name[len(prefix) :]
            stripped = name.rstrip("/")
            info = FileInfo(_join(path, stripped), obj.is_dir, None if obj.is_dir else obj.size)
            if info.path > after:  # a directory named by ``after`` comes back ("a/" > "a")
                bisect.insort(page, (stripped, info), key=_first)
                del page[limit:]
            if rest is None:
                if len(page) == limit and page[-1][0] < _lowest_unread(name):
                    rest = _LIST_RESPONSE_KEYS
            else:
                rest -= 1
                if rest <= 0:
                    break
        return [info for _, info in page]

    def walk_files(self, path: str = "") -> Iterator[FileInfo]:
        objects = self.client.list_objects(
            self.bucket, prefix=self._dir_prefix(path), recursive=True
        )
        infos = [FileInfo(self._relative(o.object_name), False, o.size) for o in objects]
        yield from sorted(infos, key=lambda info: info.path)

    def walk_files_page(self, path: str, after: str, limit: int) -> list[FileInfo]:
        # A recursive listing is in key order, which is path order below one prefix: it starts
        # after the page key and stops after the page (a response or two, not the whole tree).
        objects = self.client.list_objects(
            self.bucket,
            prefix=self._dir_prefix(path),
            recursive=True,
            start_after=self._key(after) if after else None,
        )
        page = (FileInfo(self._relative(o.object_name), False, o.size) for o in objects)
        return list(islice(page, limit))

    def delete_artifacts(self, path: str = "") -> None:
        key = self._key(path)
        doomed = [DeleteObject(key)] if key else []
        objects = self.client.list_objects(
            self.bucket, prefix=self._dir_prefix(path), recursive=True
        )
        doomed += [DeleteObject(o.object_name) for o in objects]
        errors = list(self.client.remove_objects(self.bucket, doomed))
        failed = [e for e in errors if e.code not in _NOT_FOUND]
        if failed:
            raise RuntimeError(f"could not delete {len(failed)} objects: {failed[0]}")

    # -- multipart and presigned URLs ----------------------------------------------------------
    # minio keeps the low-level multipart calls protected; they are stable across 7.x.

    def _s3(self) -> Any:
        return self.client

    def create_multipart_upload(
        self, path: str, num_parts: int = 0, expires_in: int = 900
    ) -> MultipartUpload:
        if not path:
            raise InvalidParameterValue("path '' is not allowed for an upload: name the file")
        key = self._key(path)
        upload_id = self._s3()._create_multipart_upload(self.bucket, key, {})
        credentials = [
            PartCredential(
                part_number=number,
                url=self.client.get_presigned_url(
                    "PUT",
                    self.bucket,
                    key,
                    expires=timedelta(seconds=expires_in),
                    extra_query_params={"partNumber": str(number), "uploadId": upload_id},
                ),
            )
            for number in range(1, num_parts + 1)
        ]
        return MultipartUpload(upload_id=upload_id, credentials=credentials)

    def upload_part(
        self, path: str, upload_id: str, part_number: int, chunks: Iterable[bytes]
    ) -> UploadedPart:
        # S3's UploadPart needs the part's length up front, so a part sent through the service
        # is gathered in memory; MAX_SERVICE_PART_SIZE keeps that bounded (bigger parts belong
        # on the presigned part URLs, which bypass the service).
        buffer = bytearray()
        for chunk in chunks:
            buffer += chunk
            if len(buffer) > MAX_SERVICE_PART_SIZE:
                raise InvalidParameterValue(
                    f"part {part_number} of {path!r} is larger than {MAX_SERVICE_PART_SIZE} bytes; "
                    "send smaller parts, or PUT them to the presigned part URLs"
                )
        data = bytes(buffer)
        try:
            etag = self._s3()._upload_part(
                self.bucket, self._key(path), data, None, upload_id, part_number
            )
        except S3Error as err:
            self._raise_missing_upload(err, upload_id)
        return UploadedPart(part_number=part_number, etag=etag, size=len(data))

    def list_uploaded_parts(self, path: str, upload_id: str) -> list[UploadedPart]:
        parts: list[UploadedPart] = []
        marker: str | None = None
        while True:
            try:
                result = self._s3()._list_parts(
                    self.bucket, self._key(path), upload_id, part_number_marker=marker
                )
            except S3Error as err:
                self._raise_missing_upload(err, upload_id)
            parts += [UploadedPart(p.part_number, p.etag.strip('"'), p.size) for p in result.parts]
            if not result.is_truncated:
                return sorted(parts, key=lambda p: p.part_number)
            marker = str(result.next_part_number_marker)

    def complete_multipart_upload(
        self, path: str, upload_id: str, parts: list[UploadedPart]
    ) -> FileInfo:
        if not parts:
            raise InvalidParameterValue("parts is empty: name the uploaded parts in order")
        key = self._key(path)
        s3_parts = [Part(p.part_number, p.etag.strip('"')) for p in parts]
        try:
            self._s3()._complete_multipart_upload(self.bucket, key, upload_id, s3_parts)
        except S3Error as err:
            if err.code in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall"):
                raise InvalidParameterValue(
                    f"parts of upload {upload_id!r} were refused: {err.message}"
                ) from None
            self._raise_missing_upload(err, upload_id)
        size = self.client.stat_object(self.bucket, key).size
        return FileInfo(path=path, is_dir=False, file_size=size)

    def abort_multipart_upload(self, path: str, upload_id: str) -> None:
        try:
            self._s3()._abort_multipart_upload(self.bucket, self._key(path), upload_id)
        except S3Error as err:
            self._raise_missing_upload(err, upload_id)

    def presigned_url(self, path: str, method: str = "GET", expires_in: int = 900) -> PresignedUrl:
        url = self.client.get_presigned_url(
            method, self.bucket, self._key(path), expires=timedelta(seconds=expires_in)
        )
        return PresignedUrl(url=url)

    @staticmethod
    def _raise_missing_upload(err: S3Error, upload_id: str) -> Any:
        if err.code in _NOT_FOUND:
            raise ResourceDoesNotExist(f"multipart upload {upload_id!r} does not exist") from None
        raise err
