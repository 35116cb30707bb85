"""The ``mlflow-artifacts`` proxy: MLflow's client moves artifact bytes through these endpoints
when a run's artifact URI is ``mlflow-artifacts:/…`` (see :mod:`.uris`).

``/api/2.0/mlflow-artifacts/artifacts/<path>``: PUT uploads, GET downloads, DELETE deletes;
``…/artifacts?path=<dir>`` lists a directory; ``…/mpu/{create,complete,abort}/<path>`` run a
multipart upload whose parts are PUT to ``…/mpu/upload-part/<path>`` (or straight to the object
store when the backend hands out presigned part URLs). Bytes are streamed both ways in chunks
between the HTTP connection and the artifacts service's streaming calls: no file is held in
memory whole. Paths are checked by the artifacts service, the one place that checks them.
"""

from __future__ import annotations

import mimetypes
import posixpath
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, quote, unquote

import grpc

from mlgrid.api.artifacts.v1 import artifacts_service_pb2 as pb
from mlgrid.api.registry.v1 import registry_service_pb2
from mlgrid.api.tracking.v1 import tracking_service_pb2

from .context import RestContext
from .errors import RestError, from_rpc, invalid
from .exchange import Exchange
from .fields import Field, Kind, Spec, int_field, objects, str_field
from .tracking import file_infos

#: Bytes per message of an upload stream (the SDK's chunk size is of the same order).
CHUNK_BYTES = 1024 * 1024
PREFIX = "/api/2.0/mlflow-artifacts/"

_MPU_CREATE = Spec(str_field("path", required=True), int_field("num_parts"))
_MPU_PART = Spec(Field("part_number", Kind.INT, required=True), str_field("etag"), str_field("url"))
_MPU_COMPLETE = Spec(
    str_field("path", required=True),
    str_field("upload_id", required=True),
    objects("parts", _MPU_PART),
)
_MPU_ABORT = Spec(str_field("path", required=True), str_field("upload_id", required=True))
_LIST = Spec(str_field("path"))
_PART_QUERY = Spec(str_field("upload_id", required=True), int_field("part_number", required=True))


def serve(ctx: RestContext, ex: Exchange, rest: str) -> None:
    """Serves ``rest``, the part of the path after ``/api/2.0/mlflow-artifacts/``."""
    method = ex.method
    if rest == "artifacts" and method == "GET":
        return list_directory(ctx, ex)
    if rest.startswith("artifacts/"):
        path = unquote(rest[len("artifacts/") :])
        if method in ("GET", "HEAD"):
            return download(ctx, ex, ctx.uris.location(""), path)
        if method == "PUT":
            return upload(ctx, ex, path)
        if method == "DELETE":
            return delete(ctx, ex, path)
    for verb, action in _MPU.items():
        if rest.startswith(f"mpu/{verb}/"):
            if method != ("PUT" if verb == "upload-part" else "POST"):
                break
            return action(ctx, ex, unquote(rest[len(f"mpu/{verb}/") :]))
    if rest.startswith("presigned/") and method == "GET":
        return presigned(ctx, ex, unquote(rest[len("presigned/") :]))
    raise RestError(
        "ENDPOINT_NOT_FOUND", f"no mlflow-artifacts endpoint answers {method} {ex.path[:120]}"
    )


def _root(ctx: RestContext) -> str:
    return ctx.uris.location("")


def download(ctx: RestContext, ex: Exchange, root: str, path: str) -> None:
    """Streams one file below ``root`` (a directory is refused: list it instead)."""
    if not path:
        raise invalid("name a file to download; list a directory with GET …/artifacts?path=")
    call = ctx.backends.artifacts(root).DownloadArtifacts(
        pb.DownloadArtifactsRequest(artifact_uri=root, path=path)
    )
    try:
        messages: Iterator[Any] = iter(call)
        try:
            first = next(messages)
        except StopIteration:
            raise RestError(
                "RESOURCE_DOES_NOT_EXIST", f"no artifact file at {path[:200]!r}"
            ) from None
        if first.path != posixpath.basename(path.rstrip("/")):
            raise invalid(
                f"{path[:200]!r} is a directory; list it with GET "
                "/api/2.0/mlflow-artifacts/artifacts?path=<dir>"
            )
        mime = mimetypes.guess_type(first.path)[0] or "application/octet-stream"
        ex.start(200, {"Content-Type": mime, "Content-Length": str(first.file_size)})
        if ex.method == "HEAD":
            return
        ex.write(first.data)
        for message in messages:
            if message.path:  # a second file: the path named a directory after all
                ex.handler.close_connection = True
                return
            ex.write(message.data)
    except grpc.RpcError as err:
        if ex.responded:
            ex.handler.close_connection = True  # the length promised cannot be kept
            return
        raise from_rpc(err) from None
    finally:
        call.cancel()


def upload(ctx: RestContext, ex: Exchange, path: str) -> None:
    """Streams the request body into one file (stored only once every byte has arrived)."""
    root = _root(ctx)
    size = None if ex.chunked else ex.content_length

    def messages() -> Iterator[pb.UploadArtifactRequest]:
        head: pb.UploadArtifactRequest | None = pb.UploadArtifactRequest(
            artifact_uri=root, path=path
        )
        if size is not None and head is not None:
            head.file_size = size
        for chunk in ex.body_chunks(CHUNK_BYTES):
            if head is not None:
                head.data = chunk
                yield head
                head = None
            else:
                yield pb.UploadArtifactRequest(data=chunk)
        if head is not None:
            head.last = True
            yield head
        else:
            yield pb.UploadArtifactRequest(last=True)

    ctx.backends.artifacts(root).UploadArtifact(messages())
    ex.send_json({})


def delete(ctx: RestContext, ex: Exchange, path: str) -> None:
    root = _root(ctx)
    ctx.backends.artifacts(root).DeleteArtifacts(
        pb.DeleteArtifactsRequest(artifact_uri=root, path=path), timeout=ctx.timeout
    )
    ex.send_json({})


def list_directory(ctx: RestContext, ex: Exchange) -> None:
    """The direct children of ``?path=`` by base name, as MLflow's proxy lists them."""
    req = _LIST.read_query(parse_qs(ex.query, keep_blank_values=True))
    root = _root(ctx)
    try:
        answer = ctx.backends.artifacts(root).ListArtifacts(
            pb.ListArtifactsRequest(artifact_uri=root, path=req.get("path", "")),
            timeout=ctx.timeout,
        )
    except grpc.RpcError as err:
        if err.code() is grpc.StatusCode.NOT_FOUND:  # type: ignore[attr-defined]
            ex.send_json({})  # MLflow lists a missing directory as empty
            return
        raise
    files = file_infos(answer.files, base_names=True)
    ex.send_json({"files": files} if files else {})


# -- multipart uploads ------------------------------------------------------------------------


def mpu_create(ctx: RestContext, ex: Exchange, artifact_path: str) -> None:
    req = _MPU_CREATE.read_json(ex.read_json())
    root = _root(ctx)
    destination = posixpath.join(artifact_path, posixpath.basename(req["path"]))
    num_parts = req.get("num_parts", 0)
    answer = ctx.backends.artifacts(root).CreateMultipartUpload(
        pb.CreateMultipartUploadRequest(artifact_uri=root, path=destination, num_parts=num_parts),
        timeout=ctx.timeout,
    )
    credentials = [
        {"part_number": c.part_number, "url": c.url, "headers": dict(c.headers)}
        for c in answer.credentials
    ]
    if not credentials:
        # The backend takes parts through the service: hand out this proxy's own part URLs.
        host = ex.handler.headers.get("Host") or "127.0.0.1"
        base = f"http://{host}{PREFIX}mpu/upload-part/{quote(destination)}"
        credentials = [
            {
                "part_number": n,
                "url": f"{base}?upload_id={quote(answer.upload_id)}&part_number={n}",
                "headers": {},
            }
            for n in range(1, num_parts + 1)
        ]
    ex.send_json({"upload_id": answer.upload_id, "credentials": credentials})


def mpu_upload_part(ctx: RestContext, ex: Exchange, path: str) -> None:
    """One part's bytes, streamed to the service; its entity tag comes back as ``ETag``."""
    query = _PART_QUERY.read_query(parse_qs(ex.query, keep_blank_values=True))
    root = _root(ctx)
    size = None if ex.chunked else ex.content_length

    def messages() -> Iterator[pb.UploadPartRequest]:
        head: pb.UploadPartRequest | None = pb.UploadPartRequest(
            artifact_uri=root,
            path=path,
            upload_id=query["upload_id"],
            part_number=query["part_number"],
        )
        if size is not None and head is not None:
            head.part_size = size
        for chunk in ex.body_chunks(CHUNK_BYTES):
            if head is not None:
                head.data = chunk
                yield head
                head = None
            else:
                yield pb.UploadPartRequest(data=chunk)
        if head is not None:
            head.last = True
            yield head
        else:
            yield pb.UploadPartRequest(last=True)

    answer = ctx.backends.artifacts(root).UploadPart(messages())
    ex.send(200, b"{}", ETag=f'"{answer.part.etag}"')


def mpu_complete(ctx: RestContext, ex: Exchange, artifact_path: str) -> None:
    req = _MPU_COMPLETE.read_json(ex.read_json())
    root = _root(ctx)
    destination = posixpath.join(artifact_path, posixpath.basename(req["path"]))
    ctx.backends.artifacts(root).CompleteMultipartUpload(
        pb.CompleteMultipartUploadRequest(
            artifact_uri=root,
            path=destination,
            upload_id=req["upload_id"],
            parts=[
                pb.UploadedPart(part_number=p["part_number"], etag=p.get("etag", "").strip('"'))
                for p in req.get("parts", ())
            ],
        ),
        timeout=ctx.timeout,
    )
    ex.send_json({})


def mpu_abort(ctx: RestContext, ex: Exchange, artifact_path: str) -> None:
    req = _MPU_ABORT.read_json(ex.read_json())
    root = _root(ctx)
    destination = posixpath.join(artifact_path, posixpath.basename(req["path"]))
    ctx.backends.artifacts(root).AbortMultipartUpload(
        pb.AbortMultipartUploadRequest(
            artifact_uri=root, path=destination, upload_id=req["upload_id"]
        ),
        timeout=ctx.timeout,
    )
    ex.send_json({})


def presigned(ctx: RestContext, ex: Exchange, path: str) -> None:
    root = _root(ctx)
    try:
        answer = ctx.backends.artifacts(root).GetPresignedUrl(
            pb.GetPresignedUrlRequest(
                artifact_uri=root, path=path, method=pb.PRESIGNED_URL_METHOD_GET
            ),
            timeout=ctx.timeout,
        )
    except grpc.RpcError as err:
        if err.code() is grpc.StatusCode.FAILED_PRECONDITION:  # type: ignore[attr-defined]
            raise RestError(
                "NOT_IMPLEMENTED", "the artifact store behind this proxy has no presigned URLs"
            ) from None
        raise
    ex.send_json({"url": answer.url, "headers": dict(answer.headers)})


_MPU = {
    "create": mpu_create,
    "complete": mpu_complete,
    "abort": mpu_abort,
    "upload-part": mpu_upload_part,
}


# -- the UI's artifact views ------------------------------------------------------------------

_GET_ARTIFACT = Spec(str_field("path", required=True), str_field("run_uuid"), str_field("run_id"))
_GET_VERSION_ARTIFACT = Spec(
    str_field("path", required=True),
    str_field("name", required=True),
    str_field("version", required=True),
)


def get_run_artifact(ctx: RestContext, ex: Exchange) -> None:
    """``/get-artifact?run_uuid=…&path=…``: a file of a run, as MLflow's UI shows it."""
    req = _GET_ARTIFACT.read_query(parse_qs(ex.query, keep_blank_values=True))
    run_id = req.get("run_id") or req.get("run_uuid") or ""
    run = ctx.backends.tracking().GetRun(
        tracking_service_pb2.GetRunRequest(run_id=run_id), timeout=ctx.timeout
    )
    download(ctx, ex, run.run.info.artifact_uri, req["path"])


def get_model_version_artifact(ctx: RestContext, ex: Exchange) -> None:
    """``/model-versions/get-artifact?name=…&version=…&path=…``: a file of a model version."""
    req = _GET_VERSION_ARTIFACT.read_query(parse_qs(ex.query, keep_blank_values=True))
    answer = ctx.backends.registry().GetModelVersionDownloadUri(
        registry_service_pb2.GetModelVersionDownloadUriRequest(
            name=req["name"], version=req["version"]
        ),
        timeout=ctx.timeout,
    )
    download(ctx, ex, answer.artifact_uri, req["path"])
