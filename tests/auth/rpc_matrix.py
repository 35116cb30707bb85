"""The permission each RPC needs and a request for it, per service: the table the matrix test
walks. Generated requests target a fixture set of resources (an experiment with a run and a
logged model, a registered model with a version, the run's artifact location)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from mlgrid.api.artifacts.v1 import artifacts_service_pb2 as art
from mlgrid.api.artifacts.v1 import artifacts_service_pb2_grpc as art_grpc
from mlgrid.api.projects.v1 import projects_service_pb2 as proj
from mlgrid.api.projects.v1 import projects_service_pb2_grpc as proj_grpc
from mlgrid.api.registry.v1 import registry_service_pb2 as reg
from mlgrid.api.registry.v1 import registry_service_pb2_grpc as reg_grpc
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.api.tracking.v1 import tracking_service_pb2 as trk
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as trk_grpc
from mlgrid_services.common.auth.permissions import Permission

#: Not a level: the call creates a resource (any authenticated user may, in the default
#: workspace) or lists them (results cut to what the caller may read).
CREATES = "creates"
LISTS = "lists"

SERVICES: dict[str, tuple[Any, str, Callable[[grpc.Channel], Any]]] = {
    "tracking": (trk, "TrackingService", trk_grpc.TrackingServiceStub),
    "registry": (reg, "RegistryService", reg_grpc.RegistryServiceStub),
    "artifacts": (art, "ArtifactsService", art_grpc.ArtifactsServiceStub),
    "projects": (proj, "ProjectsService", proj_grpc.ProjectsServiceStub),
}


@dataclass
class Resources:
    """One set of resources the requests name."""

    experiment_id: str
    experiment_name: str
    run_id: str
    logged_model_id: str
    model_name: str
    artifact_uri: str


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Entry:
    """What a method needs, how to ask it, and whether an allowed call destroys its target."""

    needs: Permission | str
    request: Callable[[Resources], Any]
    destroys: bool = False
    #: Client streaming: the request is sent as a one-message stream.
    streams_in: bool = False
    #: For LISTS: the names/ids in the answer, to see whether the resource shows.
    listed: Callable[[Any], set[str]] | None = None
    #: For LISTS: the id of the resource that must show only to readers.
    target: Callable[[Resources], str] | None = None


R, E, M = Permission.READ, Permission.EDIT, Permission.MANAGE

TRACKING: dict[str, Entry] = {
    "CreateExperiment": Entry(CREATES, lambda f: trk.CreateExperimentRequest(name=_unique("exp"))),
    "GetExperiment": Entry(R, lambda f: trk.GetExperimentRequest(experiment_id=f.experiment_id)),
    "GetExperimentByName": Entry(
        R, lambda f: trk.GetExperimentByNameRequest(experiment_name=f.experiment_name)
    ),
    "SearchExperiments": Entry(
        LISTS,
        lambda f: trk.SearchExperimentsRequest(max_results=1000),
        listed=lambda r: {e.experiment_id for e in r.experiments},
        target=lambda f: f.experiment_id,
    ),
    "UpdateExperiment": Entry(
        E,
        lambda f: trk.UpdateExperimentRequest(experiment_id=f.experiment_id, new_name=_unique("x")),
        destroys=True,
    ),
    "DeleteExperiment": Entry(
        M, lambda f: trk.DeleteExperimentRequest(experiment_id=f.experiment_id), destroys=True
    ),
    "RestoreExperiment": Entry(
        M, lambda f: trk.RestoreExperimentRequest(experiment_id=f.experiment_id)
    ),
    "SetExperimentTag": Entry(
        E, lambda f: trk.SetExperimentTagRequest(experiment_id=f.experiment_id, key="k", value="v")
    ),
    "DeleteExperimentTag": Entry(
        E, lambda f: trk.DeleteExperimentTagRequest(experiment_id=f.experiment_id, key="k")
    ),
    "CreateRun": Entry(E, lambda f: trk.CreateRunRequest(experiment_id=f.experiment_id)),
    "GetRun": Entry(R, lambda f: trk.GetRunRequest(run_id=f.run_id)),
    "UpdateRun": Entry(E, lambda f: trk.UpdateRunRequest(run_id=f.run_id, run_name="renamed")),
    "DeleteRun": Entry(M, lambda f: trk.DeleteRunRequest(run_id=f.run_id), destroys=True),
    "RestoreRun": Entry(M, lambda f: trk.RestoreRunRequest(run_id=f.run_id)),
    "SearchRuns": Entry(R, lambda f: trk.SearchRunsRequest(experiment_ids=[f.experiment_id])),
    "SearchDatasets": Entry(
        R, lambda f: trk.SearchDatasetsRequest(experiment_ids=[f.experiment_id])
    ),
    "LogParam": Entry(
        E, lambda f: trk.LogParamRequest(run_id=f.run_id, key=_unique("p"), value="1")
    ),
    "LogMetric": Entry(
        E,
        lambda f: trk.LogMetricRequest(run_id=f.run_id, key="m", value=1.0, timestamp=1, step=0),
    ),
    "SetTag": Entry(E, lambda f: trk.SetTagRequest(run_id=f.run_id, key="t", value="v")),
    "DeleteTag": Entry(E, lambda f: trk.DeleteTagRequest(run_id=f.run_id, key="t")),
    "LogBatch": Entry(E, lambda f: trk.LogBatchRequest(run_id=f.run_id)),
    "LogInputs": Entry(E, lambda f: trk.LogInputsRequest(run_id=f.run_id)),
    "IngestMetrics": Entry(
        E,
        lambda f: trk.IngestMetricsRequest(
            run_id=f.run_id, metrics=[tracking_pb2.Metric(key="m", value=2.0, timestamp=2)]
        ),
        streams_in=True,
    ),
    "GetMetricHistory": Entry(
        R, lambda f: trk.GetMetricHistoryRequest(run_id=f.run_id, metric_key="m")
    ),
    "StreamMetricHistory": Entry(
        R, lambda f: trk.StreamMetricHistoryRequest(run_id=f.run_id, metric_key="m")
    ),
    "GetMetricHistoryBulkInterval": Entry(
        R,
        lambda f: trk.GetMetricHistoryBulkIntervalRequest(
            run_ids=[f.run_id], metric_key="m", max_results=10
        ),
    ),
    "LogOutputs": Entry(E, lambda f: trk.LogOutputsRequest(run_id=f.run_id)),
    "CreateLoggedModel": Entry(
        E, lambda f: trk.CreateLoggedModelRequest(experiment_id=f.experiment_id, name="lm")
    ),
    "FinalizeLoggedModel": Entry(
        E,
        lambda f: trk.FinalizeLoggedModelRequest(
            model_id=f.logged_model_id, status=tracking_pb2.LOGGED_MODEL_STATUS_READY
        ),
    ),
    "GetLoggedModel": Entry(R, lambda f: trk.GetLoggedModelRequest(model_id=f.logged_model_id)),
    "DeleteLoggedModel": Entry(
        M, lambda f: trk.DeleteLoggedModelRequest(model_id=f.logged_model_id), destroys=True
    ),
    "SearchLoggedModels": Entry(
        R, lambda f: trk.SearchLoggedModelsRequest(experiment_ids=[f.experiment_id])
    ),
    "SetLoggedModelTags": Entry(
        E, lambda f: trk.SetLoggedModelTagsRequest(model_id=f.logged_model_id)
    ),
    "DeleteLoggedModelTag": Entry(
        E, lambda f: trk.DeleteLoggedModelTagRequest(model_id=f.logged_model_id, tag_key="t")
    ),
    "LogLoggedModelParams": Entry(
        E, lambda f: trk.LogLoggedModelParamsRequest(model_id=f.logged_model_id)
    ),
}

REGISTRY: dict[str, Entry] = {
    "CreateRegisteredModel": Entry(
        CREATES, lambda f: reg.CreateRegisteredModelRequest(name=_unique("model"))
    ),
    "GetRegisteredModel": Entry(R, lambda f: reg.GetRegisteredModelRequest(name=f.model_name)),
    "RenameRegisteredModel": Entry(
        E,
        lambda f: reg.RenameRegisteredModelRequest(name=f.model_name, new_name=_unique("model")),
        destroys=True,
    ),
    "UpdateRegisteredModel": Entry(
        E, lambda f: reg.UpdateRegisteredModelRequest(name=f.model_name, description="d")
    ),
    "DeleteRegisteredModel": Entry(
        M, lambda f: reg.DeleteRegisteredModelRequest(name=f.model_name), destroys=True
    ),
    "SearchRegisteredModels": Entry(
        LISTS,
        lambda f: reg.SearchRegisteredModelsRequest(max_results=1000),
        listed=lambda r: {m.name for m in r.registered_models},
        target=lambda f: f.model_name,
    ),
    "GetLatestVersions": Entry(R, lambda f: reg.GetLatestVersionsRequest(name=f.model_name)),
    "SetRegisteredModelTag": Entry(
        E, lambda f: reg.SetRegisteredModelTagRequest(name=f.model_name, key="k", value="v")
    ),
    "DeleteRegisteredModelTag": Entry(
        E, lambda f: reg.DeleteRegisteredModelTagRequest(name=f.model_name, key="k")
    ),
    "CreateModelVersion": Entry(
        E,
        lambda f: reg.CreateModelVersionRequest(
            name=f.model_name, source=f"{f.artifact_uri}/model", run_id=f.run_id
        ),
    ),
    "GetModelVersion": Entry(
        R, lambda f: reg.GetModelVersionRequest(name=f.model_name, version="1")
    ),
    "UpdateModelVersion": Entry(
        E, lambda f: reg.UpdateModelVersionRequest(name=f.model_name, version="1", description="d")
    ),
    "DeleteModelVersion": Entry(
        M, lambda f: reg.DeleteModelVersionRequest(name=f.model_name, version="1"), destroys=True
    ),
    "SearchModelVersions": Entry(
        LISTS,
        lambda f: reg.SearchModelVersionsRequest(max_results=1000),
        listed=lambda r: {v.name for v in r.model_versions},
        target=lambda f: f.model_name,
    ),
    "TransitionModelVersionStage": Entry(
        E,
        lambda f: reg.TransitionModelVersionStageRequest(
            name=f.model_name, version="1", stage="Staging"
        ),
    ),
    "SetModelVersionTag": Entry(
        E,
        lambda f: reg.SetModelVersionTagRequest(name=f.model_name, version="1", key="k", value="v"),
    ),
    "DeleteModelVersionTag": Entry(
        E, lambda f: reg.DeleteModelVersionTagRequest(name=f.model_name, version="1", key="k")
    ),
    "GetModelVersionDownloadUri": Entry(
        R, lambda f: reg.GetModelVersionDownloadUriRequest(name=f.model_name, version="1")
    ),
    "SetRegisteredModelAlias": Entry(
        E,
        lambda f: reg.SetRegisteredModelAliasRequest(name=f.model_name, alias="champ", version="1"),
    ),
    "DeleteRegisteredModelAlias": Entry(
        E, lambda f: reg.DeleteRegisteredModelAliasRequest(name=f.model_name, alias="champ")
    ),
    "GetModelVersionByAlias": Entry(
        R, lambda f: reg.GetModelVersionByAliasRequest(name=f.model_name, alias="champ")
    ),
}

ARTIFACTS: dict[str, Entry] = {
    "UploadArtifact": Entry(
        E,
        lambda f: art.UploadArtifactRequest(
            artifact_uri=f.artifact_uri, path="x.txt", file_size=1, data=b"x", last=True
        ),
        streams_in=True,
    ),
    "UploadArtifacts": Entry(
        E,
        lambda f: art.UploadArtifactsRequest(
            artifact_uri=f.artifact_uri, files=[art.ArtifactFile(path="y.txt", data=b"y")]
        ),
    ),
    "DownloadArtifacts": Entry(
        R, lambda f: art.DownloadArtifactsRequest(artifact_uri=f.artifact_uri, path="x.txt")
    ),
    "ListArtifacts": Entry(R, lambda f: art.ListArtifactsRequest(artifact_uri=f.artifact_uri)),
    "DeleteArtifacts": Entry(
        M, lambda f: art.DeleteArtifactsRequest(artifact_uri=f.artifact_uri, path="y.txt")
    ),
    "CreateMultipartUpload": Entry(
        E,
        lambda f: art.CreateMultipartUploadRequest(
            artifact_uri=f.artifact_uri, path="big.bin", num_parts=1
        ),
    ),
    "UploadPart": Entry(
        E,
        lambda f: art.UploadPartRequest(
            artifact_uri=f.artifact_uri, path="big.bin", upload_id="u", part_number=1
        ),
        streams_in=True,
    ),
    "ListUploadedParts": Entry(
        E,
        lambda f: art.ListUploadedPartsRequest(
            artifact_uri=f.artifact_uri, path="big.bin", upload_id="u"
        ),
    ),
    "CompleteMultipartUpload": Entry(
        E,
        lambda f: art.CompleteMultipartUploadRequest(
            artifact_uri=f.artifact_uri, path="big.bin", upload_id="u"
        ),
    ),
    "AbortMultipartUpload": Entry(
        E,
        lambda f: art.AbortMultipartUploadRequest(
            artifact_uri=f.artifact_uri, path="big.bin", upload_id="u"
        ),
    ),
    "GetPresignedUrl": Entry(
        R, lambda f: art.GetPresignedUrlRequest(artifact_uri=f.artifact_uri, path="x.txt")
    ),
}

PROJECTS: dict[str, Entry] = {
    "SubmitRun": Entry(
        E,
        lambda f: proj.SubmitRunRequest(
            backend="local", uri="/nonexistent/project", experiment_id=f.experiment_id
        ),
    ),
    "GetRunStatus": Entry(R, lambda f: proj.GetRunStatusRequest(run_id=f.run_id)),
    "WaitRun": Entry(R, lambda f: proj.WaitRunRequest(run_id=f.run_id, timeout_seconds=0.1)),
    "CancelRun": Entry(E, lambda f: proj.CancelRunRequest(run_id=f.run_id)),
    "StreamRunLogs": Entry(R, lambda f: proj.StreamRunLogsRequest(run_id=f.run_id)),
}

MATRIX: dict[str, dict[str, Entry]] = {
    "tracking": TRACKING,
    "registry": REGISTRY,
    "artifacts": ARTIFACTS,
    "projects": PROJECTS,
}
#: Services the SDK tunnels (and the route its artifacts tunnel is pinned to).
TUNNELLED = {"tracking": "", "registry": "", "artifacts": "file:"}


def invoke(stub: Any, method: str, entry: Entry, resources: Resources, metadata: Any) -> Any:
    """Calls ``method`` (a zero-argument callable for code_of / error_of)."""
    request = entry.request(resources)
    call = getattr(stub, method)
    payload = iter([request]) if entry.streams_in else request
    return lambda: call(payload, metadata=metadata, timeout=30)
