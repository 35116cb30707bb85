"""Artifact locations are allowlisted for every scheme: checked when an experiment names one,
when a model version names one as its source, and at every artifacts call, including for a
plugin's repository that keeps its files in local directories."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest

from mlgrid.api.artifacts.v1 import artifacts_service_pb2 as apb
from mlgrid.api.artifacts.v1 import artifacts_service_pb2_grpc as apb_grpc
from mlgrid.api.registry.v1 import registry_service_pb2 as rpb
from mlgrid.api.registry.v1 import registry_service_pb2_grpc as rpb_grpc
from mlgrid.api.tracking.v1 import tracking_service_pb2 as tpb
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as tpb_grpc
from mlgrid.artifacts.repository import ArtifactRepository
from mlgrid.plugins import SchemeRegistry
from mlgrid_services.artifacts.domain import ArtifactsDomain
from mlgrid_services.artifacts.repositories import BUILTIN_REPOSITORIES
from mlgrid_services.artifacts.repositories.file import FileArtifactRepository
from mlgrid_services.artifacts.servicer import ArtifactsServicer
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.location_policy import policy_for
from mlgrid_services.common.server import ServedService, start_server

SETTING = "MLGRID_ARTIFACTS_ALLOWED_ROOTS"


def _refused(call, *words: str) -> str:
    with pytest.raises(grpc.RpcError) as info:
        call()
    details = info.value.details() or ""
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, details
    for word in words:
        assert word in details, details
    return details


def test_an_experiment_outside_the_allowed_roots_is_refused_at_create_naming_the_setting(
    grpc_stack, tmp_path: Path
) -> None:
    tracking = tpb_grpc.TrackingServiceStub(grpc_stack.channel())
    for location in (tmp_path.as_uri(), "s3://someone-elses-bucket/x", "file-plugin:///etc"):
        _refused(
            lambda loc=location: tracking.CreateExperiment(
                tpb.CreateExperimentRequest(name=f"e-{time.time_ns()}", artifact_location=loc)
            ),
            SETTING,
        )
    inside = f"{grpc_stack.artifact_root}/team-a"
    created = tracking.CreateExperiment(
        tpb.CreateExperimentRequest(name=f"e-{time.time_ns()}", artifact_location=inside)
    )
    got = tracking.GetExperiment(tpb.GetExperimentRequest(experiment_id=created.experiment_id))
    assert got.experiment.artifact_location == inside


def test_the_setting_allows_buckets_prefixes_and_whole_schemes(
    grpc_stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracking = tpb_grpc.TrackingServiceStub(grpc_stack.channel())
    monkeypatch.setenv(SETTING, "s3://team-bucket/ml, gs:*")

    def create(location: str) -> str:
        return tracking.CreateExperiment(
            tpb.CreateExperimentRequest(name=f"e-{time.time_ns()}", artifact_location=location)
        ).experiment_id

    assert create("s3://team-bucket/ml/exp1")
    assert create("gs://any-bucket/x")
    _refused(lambda: create("s3://team-bucket/other"), SETTING)
    _refused(lambda: create("s3://other-bucket/ml"), SETTING)


def test_a_model_version_source_outside_the_allowed_roots_is_refused(
    grpc_stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = rpb_grpc.RegistryServiceStub(grpc_stack.channel())
    name = f"m-{time.time_ns()}"
    registry.CreateRegisteredModel(rpb.CreateRegisteredModelRequest(name=name))
    for source in ("file-plugin:///etc", "s3://someone-elses-bucket/model"):
        _refused(
            lambda s=source: registry.CreateModelVersion(
                rpb.CreateModelVersionRequest(name=name, source=s)
            ),
            SETTING,
        )
    monkeypatch.setenv(SETTING, "s3://models-bucket")
    version = registry.CreateModelVersion(
        rpb.CreateModelVersionRequest(name=name, source="s3://models-bucket/fraud/1")
    ).model_version
    assert version.source == "s3://models-bucket/fraud/1"


class LocalPluginRepository(FileArtifactRepository):
    """A plugin scheme whose repository keeps files in the local directory its URI names, like
    the example plugin's ``file-plugin:///<dir>``."""

    def __init__(self, artifact_uri: str) -> None:
        super().__init__("file://" + urlsplit(artifact_uri).path)


@pytest.fixture
def plugin_artifacts(tmp_path: Path):
    """The artifacts service with a local-mapping plugin scheme, default root ``tmp/root``."""
    root = tmp_path / "root"
    root.mkdir()
    repositories: SchemeRegistry[ArtifactRepository] = SchemeRegistry(
        "mlgrid.artifact_repository", "artifact repository", dict(BUILTIN_REPOSITORIES)
    )
    repositories.register("local-plugin", LocalPluginRepository)
    config = ServiceConfig(default_artifact_root=root.as_uri())
    servicer = ArtifactsServicer(ArtifactsDomain(policy_for(config), repositories))
    service = ServedService(
        "mlgrid.api.artifacts.v1.ArtifactsService",
        lambda server: apb_grpc.add_ArtifactsServiceServicer_to_server(servicer, server),
        repositories.schemes(),
    )
    running = start_server([service])
    channel = grpc.insecure_channel(running.address)
    yield apb_grpc.ArtifactsServiceStub(channel), root
    channel.close()
    running.stop(0)


def test_a_plugin_repository_mapping_to_local_files_cannot_reach_outside_the_roots(
    plugin_artifacts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub, root = plugin_artifacts
    secret = tmp_path / "etc"
    secret.mkdir()
    (secret / "shadow").write_text("root:$6$secret")

    def download(uri: str) -> bytes:
        request = apb.DownloadArtifactsRequest(artifact_uri=uri, path="shadow")
        return b"".join(r.data for r in stub.DownloadArtifacts(request))

    _refused(lambda: download(f"local-plugin://{secret}"), SETTING)
    # Allowing the scheme as a whole does not open local directories outside the file roots.
    monkeypatch.setenv(SETTING, "local-plugin:*")
    _refused(lambda: download(f"local-plugin://{secret}"), SETTING)
    (root / "models").mkdir()
    (root / "models" / "shadow").write_text("model bytes")
    assert download(f"local-plugin://{root}/models") == b"model bytes"
    # Naming the plugin location itself is the operator's explicit choice.
    monkeypatch.setenv(SETTING, f"local-plugin://{secret}")
    assert download(f"local-plugin://{secret}") == b"root:$6$secret"
