"""gRPC adapter of the artifacts service: protos in, domain call, protos out. Nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

from mlgrid.api.artifacts.v1 import artifacts_service_pb2 as pb
from mlgrid.api.artifacts.v1 import artifacts_service_pb2_grpc as pb_grpc
from mlgrid.artifacts.repository import FileInfo, UploadedPart
from mlgrid.exceptions import InvalidParameterValue

from .domain import ArtifactsDomain
from .transfer_gate import TransferGate

M = TypeVar("M")

_METHODS = {
    pb.PRESIGNED_URL_METHOD_UNSPECIFIED: "GET",
    pb.PRESIGNED_URL_METHOD_GET: "GET",
    pb.PRESIGNED_URL_METHOD_PUT: "PUT",
}


def _file_info(info: FileInfo) -> pb.FileInfo:
    return pb.FileInfo(path=info.path, is_dir=info.is_dir, file_size=info.file_size or 0)


def _part(part: UploadedPart) -> pb.UploadedPart:
    return pb.UploadedPart(part_number=part.part_number, etag=part.etag, size=part.size)


def _first(requests: Iterator[M], rpc: str) -> M:
    first = next(requests, None)
    if first is None:
        raise InvalidParameterValue(f"{rpc} stream is empty: the first message names the file")
    return first


class _ClientStream:
    """The bytes of a client stream, and whether its sender marked the final message."""

    def __init__(self, first: Any, requests: Iterator[Any]) -> None:
        self._first = first
        self._requests = requests
        self.last = bool(first.last)

    def ended(self) -> bool:
        return self.last

    def __iter__(self) -> Iterator[bytes]:
        first = self._first.data
        if first:
            yield first
        for request in self._requests:
            if self.last:
                raise InvalidParameterValue("a message followed the one with last=true")
            self.last = bool(request.last)
            data = request.data  # each access copies the bytes out of the message
            if data:
                yield data


class ArtifactsServicer(pb_grpc.ArtifactsServiceServicer):
    """Serves mlgrid.api.artifacts.v1.ArtifactsService over an :class:`ArtifactsDomain`."""

    def __init__(self, domain: ArtifactsDomain, gate: TransferGate | None = None) -> None:
        self._domain = domain
        self._gate = gate or TransferGate()

    def UploadArtifact(self, request_iterator, context):
        with self._gate.slot(context):
            return self._upload_artifact(request_iterator)

    def _upload_artifact(self, request_iterator):
        first = _first(request_iterator, "UploadArtifact")
        stream = _ClientStream(first, request_iterator)
        info, sha256 = self._domain.upload(
            first.artifact_uri,
            first.path,
            stream,
            file_size=first.file_size if first.HasField("file_size") else None,
            sha256=first.sha256,
            ended=stream.ended,
        )
        return pb.UploadArtifactResponse(file=_file_info(info), sha256=sha256)

    def UploadArtifacts(self, request, context):
        files = [(f.path, f.data) for f in request.files]
        infos = self._domain.upload_many(request.artifact_uri, files)
        return pb.UploadArtifactsResponse(files=[_file_info(i) for i in infos])

    def DownloadArtifacts(self, request, context):
        with self._gate.slot(context):
            yield from self._download_artifacts(request)

    def _download_artifacts(self, request):
        for item in self._domain.download(request.artifact_uri, request.path):
            first = next(item.chunks, b"")
            yield pb.DownloadArtifactsResponse(path=item.path, file_size=item.file_size, data=first)
            for chunk in item.chunks:
                yield pb.DownloadArtifactsResponse(data=chunk)

    def ListArtifacts(self, request, context):
        files, token = self._domain.list_artifacts(
            request.artifact_uri,
            request.path,
            request.page_size,
            request.page_token,
            request.recursive,
        )
        return pb.ListArtifactsResponse(files=[_file_info(f) for f in files], next_page_token=token)

    def DeleteArtifacts(self, request, context):
        self._domain.delete(request.artifact_uri, request.path)
        return pb.DeleteArtifactsResponse()

    def CreateMultipartUpload(self, request, context):
        upload = self._domain.create_multipart_upload(
            request.artifact_uri, request.path, request.num_parts
        )
        return pb.CreateMultipartUploadResponse(
            upload_id=upload.upload_id,
            credentials=[
                pb.MultipartUploadCredential(
                    part_number=c.part_number, url=c.url, headers=c.headers
                )
                for c in upload.credentials
            ],
        )

    def UploadPart(self, request_iterator, context):
        with self._gate.slot(context):
            return self._upload_part(request_iterator)

    def _upload_part(self, request_iterator):
        first = _first(request_iterator, "UploadPart")
        stream = _ClientStream(first, request_iterator)
        part = self._domain.upload_part(
            first.artifact_uri,
            first.path,
            first.upload_id,
            first.part_number,
            stream,
            part_size=first.part_size if first.HasField("part_size") else None,
            ended=stream.ended,
        )
        return pb.UploadPartResponse(part=_part(part))

    def ListUploadedParts(self, request, context):
        parts = self._domain.list_uploaded_parts(
            request.artifact_uri, request.path, request.upload_id
        )
        return pb.ListUploadedPartsResponse(parts=[_part(p) for p in parts])

    def CompleteMultipartUpload(self, request, context):
        parts = [UploadedPart(p.part_number, p.etag, p.size) for p in request.parts]
        info = self._domain.complete_multipart_upload(
            request.artifact_uri, request.path, request.upload_id, parts
        )
        return pb.CompleteMultipartUploadResponse(file=_file_info(info))

    def AbortMultipartUpload(self, request, context):
        self._domain.abort_multipart_upload(request.artifact_uri, request.path, request.upload_id)
        return pb.AbortMultipartUploadResponse()

    def GetPresignedUrl(self, request, context):
        method = _METHODS.get(request.method)
        if method is None:
            raise InvalidParameterValue(f"method {request.method} is not allowed: use GET or PUT")
        url = self._domain.presigned_url(
            request.artifact_uri,
            request.path,
            method,
            request.expires_in_seconds or 900,
        )
        return pb.GetPresignedUrlResponse(url=url.url, headers=url.headers)
