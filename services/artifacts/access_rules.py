"""What each ArtifactsService call needs when auth is on (services/common/auth/policy.py).

Artifacts belong to the experiment they are stored under: below the deployment's default
artifact root the first path segment is the experiment id (``<root>/<experiment_id>/<run_id>/
artifacts/…``, ``<root>/<experiment_id>/models/…``), so a call is checked on that experiment.
Locations outside the root (experiments created with their own ``artifact_location``, any other
URI) belong to no experiment the grants know: only admins and mlgrid's services reach them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mlgrid.api.artifacts.v1 import artifacts_service_pb2 as pb
from mlgrid_services.common.auth.permissions import Permission, ResourceKind
from mlgrid_services.common.auth.policy import UNOWNED, Rule, edits, manages, reads

EXPERIMENT = ResourceKind.EXPERIMENT
_SERVICE = pb.DESCRIPTOR.services_by_name["ArtifactsService"].full_name


class ExperimentOfLocation:
    """artifact_uri (+ path) -> the experiment id it lies under."""

    def __init__(self, artifact_root: str) -> None:
        self._root = artifact_root.rstrip("/") + "/"

    def __call__(self, request: Any) -> Iterable[str]:
        paths = [request.path] if hasattr(request, "path") else [f.path for f in request.files]
        return {self._experiment(request.artifact_uri, path) for path in paths or [""]}

    def _experiment(self, artifact_uri: str, path: str) -> str:
        uri = artifact_uri.rstrip("/")
        if path:
            uri = f"{uri}/{path.lstrip('/')}"
        # A location that climbs out of where it starts belongs to nobody the grants know
        # (the service refuses such paths anyway).
        if not uri.startswith(self._root) or "/../" in f"{uri}/" or "/./" in f"{uri}/":
            return UNOWNED
        first = uri[len(self._root) :].split("/", 1)[0]
        return first if first.isdigit() else UNOWNED


def artifacts_rules(artifact_root: str) -> dict[str, Rule]:
    """The rule of every ArtifactsService method."""
    of = ExperimentOfLocation(artifact_root)

    def presigned(request: Any) -> Permission:
        writes = request.method == pb.PRESIGNED_URL_METHOD_PUT
        return Permission.EDIT if writes else Permission.READ

    rules: dict[str, Rule] = {
        "UploadArtifact": edits(EXPERIMENT, of),
        "UploadArtifacts": edits(EXPERIMENT, of),
        "DownloadArtifacts": reads(EXPERIMENT, of),
        "ListArtifacts": reads(EXPERIMENT, of),
        "DeleteArtifacts": manages(EXPERIMENT, of),
        "CreateMultipartUpload": edits(EXPERIMENT, of),
        "UploadPart": edits(EXPERIMENT, of),
        "ListUploadedParts": edits(EXPERIMENT, of),
        "CompleteMultipartUpload": edits(EXPERIMENT, of),
        "AbortMultipartUpload": edits(EXPERIMENT, of),
        "GetPresignedUrl": Rule(kind=EXPERIMENT, needs=Permission.READ, ids=of, needs_of=presigned),
    }
    return {f"/{_SERVICE}/{name}": rule for name, rule in rules.items()}
