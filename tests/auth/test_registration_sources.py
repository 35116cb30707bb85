"""Registering a version from a run or a logged model, with auth on: the registry looks the
source up and notes the version on the logged model (its ``mlflow.modelVersions`` tag) as its
own service identity, but only for what the caller itself may do. Registering needs EDIT on the
registered model and READ on the source (as MLflow's auth); the tag is written only for a
caller with EDIT on the logged model's experiment, so a caller that may only read an experiment
cannot get anything written into it by registering its models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest

from mlgrid.api.auth.v1 import auth_service_pb2 as auth_pb
from mlgrid.api.registry.v1 import registry_service_pb2 as reg
from mlgrid.api.registry.v1 import registry_service_pb2_grpc as reg_grpc
from mlgrid.api.tracking.v1 import tracking_service_pb2 as trk
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as trk_grpc

from .conftest import AuthStack, error_of, start_auth_stack

TAG = "mlflow.modelVersions"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthStack]:
    built = start_auth_stack(tmp_path_factory.mktemp("registration"))
    try:
        built.auth().SetDefaultPermission(
            auth_pb.SetDefaultPermissionRequest(permission="NO_PERMISSIONS"), metadata=built.admin
        )
        yield built
    finally:
        built.close()


def _tracking(stack: AuthStack) -> trk_grpc.TrackingServiceStub:
    return trk_grpc.TrackingServiceStub(stack.gateway())


def _registry(stack: AuthStack) -> reg_grpc.RegistryServiceStub:
    return reg_grpc.RegistryServiceStub(stack.gateway())


def _setup(stack: AuthStack, user: str, level: str) -> tuple[list[tuple[str, str]], str, str, str]:
    """The admin's experiment with a run (holding model files) and a logged model; ``user``
    with ``level`` on the experiment and a registered model of its own. Returns the user's
    credentials, the run id, the logged model id and the user's model name."""
    tracking = _tracking(stack)
    experiment_id = tracking.CreateExperiment(
        trk.CreateExperimentRequest(name=f"exp-{user}"), metadata=stack.admin
    ).experiment_id
    run = tracking.CreateRun(
        trk.CreateRunRequest(experiment_id=experiment_id), metadata=stack.admin
    ).run
    model_dir = Path(urlsplit(run.info.artifact_uri).path) / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    logged = tracking.CreateLoggedModel(
        trk.CreateLoggedModelRequest(experiment_id=experiment_id, name="lm"), metadata=stack.admin
    ).model.info.model_id
    credentials = stack.create_user(user)
    if level != "NO_PERMISSIONS":
        stack.grant_on_experiment(stack.admin, experiment_id, user, level)
    name = f"model-of-{user}"
    _registry(stack).CreateRegisteredModel(
        reg.CreateRegisteredModelRequest(name=name), metadata=credentials
    )
    return credentials, run.info.run_id, logged, name


def _listed(stack: AuthStack, model_id: str) -> list[object]:
    model = (
        _tracking(stack)
        .GetLoggedModel(trk.GetLoggedModelRequest(model_id=model_id), metadata=stack.admin)
        .model
    )
    value = next((t.value for t in model.info.tags if t.key == TAG), "[]")
    return list(json.loads(value))


def _versions(stack: AuthStack, name: str) -> int:
    found = _registry(stack).SearchModelVersions(
        reg.SearchModelVersionsRequest(filter=f"name = '{name}'"), metadata=stack.admin
    )
    return len(found.model_versions)


def test_a_caller_with_edit_on_the_experiment_gets_the_version_listed(stack: AuthStack) -> None:
    credentials, _, logged, name = _setup(stack, "editor", "EDIT")
    _registry(stack).CreateModelVersion(
        reg.CreateModelVersionRequest(name=name, source=f"models:/{logged}"), metadata=credentials
    )
    assert _listed(stack, logged) == [{"name": name, "version": 1}]


def test_a_reader_registers_but_writes_nothing_into_the_experiment(stack: AuthStack) -> None:
    credentials, run_id, logged, name = _setup(stack, "reader", "READ")
    for request in (
        reg.CreateModelVersionRequest(name=name, source=f"models:/{logged}"),
        reg.CreateModelVersionRequest(name=name, source=f"runs:/{run_id}/model", model_id=logged),
    ):
        _registry(stack).CreateModelVersion(request, metadata=credentials)
    assert _versions(stack, name) == 2  # as MLflow's auth allows
    assert _listed(stack, logged) == []  # but not noted on a model it may only read


def test_a_caller_who_cannot_read_the_source_cannot_register_it(stack: AuthStack) -> None:
    credentials, run_id, logged, name = _setup(stack, "outsider", "NO_PERMISSIONS")
    artifact_uri = (
        _tracking(stack)
        .GetRun(trk.GetRunRequest(run_id=run_id), metadata=stack.admin)
        .run.info.artifact_uri
    )
    for request, what in (
        (reg.CreateModelVersionRequest(name=name, source=f"models:/{logged}"), "logged model"),
        (reg.CreateModelVersionRequest(name=name, source=f"runs:/{run_id}/model"), "run"),
        (
            reg.CreateModelVersionRequest(name=name, source=f"{artifact_uri}/model", run_id=run_id),
            "run",
        ),
    ):
        err = error_of(
            lambda r=request: _registry(stack).CreateModelVersion(r, metadata=credentials)
        )
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, request
        assert f"CreateModelVersion from {what}" in err.details()
        assert "needs READ on experiment" in err.details() and "has NO_PERMISSIONS" in err.details()
    assert _versions(stack, name) == 0
    assert _listed(stack, logged) == []


def test_another_models_version_as_source_needs_read_on_that_model(stack: AuthStack) -> None:
    credentials, run_id, _, name = _setup(stack, "copier", "READ")
    theirs = "model-of-admin"
    _registry(stack).CreateRegisteredModel(
        reg.CreateRegisteredModelRequest(name=theirs), metadata=stack.admin
    )
    _registry(stack).CreateModelVersion(
        reg.CreateModelVersionRequest(name=theirs, source=f"runs:/{run_id}/model"),
        metadata=stack.admin,
    )
    err = error_of(
        lambda: _registry(stack).CreateModelVersion(
            reg.CreateModelVersionRequest(name=name, source=f"models:/{theirs}/1"),
            metadata=credentials,
        )
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "needs READ on registered model 'model-of-admin'" in err.details()
