"""Project runs with auth on: the run's own code logs as the user who submitted it, with a
token that grants no more than that user has and stops working when the run ends; the service's
secrets and credentials never reach it. Real stack, real child processes (local backend)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from mlgrid import projects
from mlgrid.api.auth.v1 import auth_service_pb2 as auth_pb
from mlgrid.api.auth.v1 import auth_service_pb2_grpc as auth_grpc
from mlgrid.api.registry.v1 import registry_service_pb2 as reg
from mlgrid.api.registry.v1 import registry_service_pb2_grpc as reg_grpc
from mlgrid.api.tracking.v1 import tracking_service_pb2 as trk
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as trk_grpc
from mlgrid.client import Client
from mlgrid.exceptions import MlgridException
from mlgrid.protocol import AUTHORIZATION_METADATA
from tests.projects.helpers import write

from .conftest import ADMIN, CACHE_SECONDS, SECRET, AuthStack, basic, code_of, error_of

ALICE = ("alice-runs", "alice-runs-password")

#: The project: logs a metric to its run, then tries what alice may not do, and reports what it
#: was given (never the token itself: only whether the two names carry the same one).
PROJECT = {
    "MLproject": """
        name: credentials
        entry_points:
          main:
            parameters: {foreign: string, token_file: string}
            command: "python train.py {foreign} {token_file}"
    """,
    "train.py": """
        import json, os, sys
        import mlgrid
        from mlgrid.client import Client
        from mlgrid.exceptions import MlgridException

        foreign, token_file = sys.argv[1], sys.argv[2]
        with mlgrid.start_run():
            mlgrid.log_metric("accuracy", 0.93)
        client = Client()
        try:
            client.create_run(foreign)
            foreign_write = "allowed"
        except MlgridException as exc:
            foreign_write = exc.error_code
        # The test reads the token afterwards, to see that it stops working.
        with open(token_file, "w") as out:
            out.write(os.environ["MLGRID_TRACKING_TOKEN"])
        print(json.dumps({
            "same_token": os.environ["MLGRID_TRACKING_TOKEN"]
            == os.environ["MLFLOW_TRACKING_TOKEN"],
            "foreign_write": foreign_write,
            "leaked": sorted(
                name for name in os.environ
                if name.startswith("MLGRID_AUTH")
                or name.endswith(("TRACKING_USERNAME", "TRACKING_PASSWORD"))
            ),
        }))
    """,
}


#: A project that hands the test its token (through a file) and waits to be cancelled.
WAITING = {
    "MLproject": """
        name: waits
        entry_points:
          main:
            parameters: {token_file: string}
            command: "python wait.py {token_file}"
    """,
    "wait.py": """
        import os, sys, time
        with open(sys.argv[1] + ".tmp", "w") as out:
            out.write(os.environ["MLGRID_TRACKING_TOKEN"])
        os.rename(sys.argv[1] + ".tmp", sys.argv[1])
        time.sleep(120)
    """,
}


def bearer(token: str) -> list[tuple[str, str]]:
    return [(AUTHORIZATION_METADATA, f"Bearer {token}")]


@pytest.fixture
def as_alice(auth_stack: AuthStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """alice exists; this process (the submitter, and the projects service, which tests host
    in-process) has her credentials and the deployment's secret in its environment."""
    try:
        auth_stack.create_user(*ALICE)
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
    monkeypatch.setenv("MLGRID_TRACKING_URI", auth_stack.stack.tracking_uri)
    monkeypatch.setenv("MLGRID_TRACKING_USERNAME", ALICE[0])
    monkeypatch.setenv("MLGRID_TRACKING_PASSWORD", ALICE[1])
    monkeypatch.setenv("MLGRID_AUTH_SECRET", SECRET)
    monkeypatch.setenv("MLGRID_AUTH_ADMIN_PASSWORD", ADMIN[1])
    for name in ("MLGRID_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_ID", "MLGRID_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLGRID_PROJECTS_ALLOW_LOCAL_PATHS", "true")
    monkeypatch.setenv("MLGRID_PROJECTS_RUN_USER", "")
    yield ALICE[0]


def _admins_experiment(auth_stack: AuthStack, name: str) -> str:
    """An experiment alice may only read (the default permission)."""
    tracking = trk_grpc.TrackingServiceStub(auth_stack.gateway())
    return str(
        tracking.CreateExperiment(
            trk.CreateExperimentRequest(name=name), metadata=auth_stack.admin
        ).experiment_id
    )


def test_a_project_run_logs_as_its_submitter_and_its_token_ends_with_it(
    auth_stack: AuthStack, as_alice: str, tmp_path: Path
) -> None:
    foreign = _admins_experiment(auth_stack, "admins-only-runs")
    client = Client()
    experiment_id = client.create_experiment("alice-project-runs")
    project = write(tmp_path / "proj", PROJECT)
    token_file = tmp_path / "token"

    submitted = projects.run(
        str(project),
        parameters={"foreign": foreign, "token_file": str(token_file)},
        experiment_id=experiment_id,
        backend="local",
    )

    chunks = list(submitted.logs())
    logs = b"".join(c.data for c in chunks).decode()
    stdout = b"".join(c.data for c in chunks if c.stream == "stdout").decode()
    assert submitted.get_status() == "FINISHED", logs
    # What the run logged is alice's to see, in the run the service created for her.
    run = client.get_run(submitted.run_id)
    assert run.data.metrics == {"accuracy": 0.93}
    seen = json.loads(stdout.strip().splitlines()[-1])
    assert seen == {"same_token": True, "foreign_write": "PERMISSION_DENIED", "leaked": []}
    token = token_file.read_text()
    assert token.startswith("mlg_")
    # The token is in the run's environment only: not in its logs, parameters or tags.
    assert token not in logs
    assert token not in json.dumps({**run.data.params, **run.data.tags})
    # It stopped working when the run ended (after the credential cache's few moments).
    time.sleep(CACHE_SECONDS + 0.2)
    tracking = trk_grpc.TrackingServiceStub(auth_stack.gateway())
    request = trk.GetRunRequest(run_id=submitted.run_id)
    assert code_of(lambda: tracking.GetRun(request, metadata=bearer(token))) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    # … and it is gone from alice's tokens.
    tokens = auth_stack.auth().ListAccessTokens(
        auth_pb.ListAccessTokensRequest(username=as_alice), metadata=auth_stack.admin
    )
    assert not [t for t in tokens.access_tokens if submitted.run_id in t.name]


def test_the_token_works_while_the_run_runs_and_only_as_the_submitter(
    auth_stack: AuthStack, as_alice: str, tmp_path: Path
) -> None:
    """A cancelled run's token is revoked too; while it ran, the token was alice's: it could
    read her run and not an experiment she was denied."""
    client = Client()
    experiment_id = client.create_experiment("alice-cancelled-runs")
    denied = _admins_experiment(auth_stack, "denied-to-alice")
    auth_stack.grant_on_experiment(auth_stack.admin, denied, as_alice, "NO_PERMISSIONS")
    project = write(tmp_path / "proj", WAITING)
    token_file = tmp_path / "token"
    submitted = projects.run(
        str(project),
        parameters={"token_file": str(token_file)},
        experiment_id=experiment_id,
        backend="local",
        synchronous=False,
    )
    try:
        deadline = time.monotonic() + 60
        while not token_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        token = token_file.read_text()
        tracking = trk_grpc.TrackingServiceStub(auth_stack.gateway())
        own = trk.GetRunRequest(run_id=submitted.run_id)
        assert code_of(lambda: tracking.GetRun(own, metadata=bearer(token))) == (grpc.StatusCode.OK)
        other = trk.GetExperimentRequest(experiment_id=denied)
        assert code_of(lambda: tracking.GetExperiment(other, metadata=bearer(token))) == (
            grpc.StatusCode.PERMISSION_DENIED
        )
        users = auth_pb.ListUsersRequest()
        assert code_of(lambda: auth_stack.auth().ListUsers(users, metadata=bearer(token))) == (
            grpc.StatusCode.PERMISSION_DENIED
        )
    finally:
        submitted.cancel()
    assert submitted.get_status() == "KILLED"
    time.sleep(CACHE_SECONDS + 0.2)
    assert code_of(lambda: tracking.GetRun(own, metadata=bearer(token))) == (
        grpc.StatusCode.UNAUTHENTICATED
    )


def test_a_docker_run_gets_the_token_in_its_container_and_loses_it_at_the_end(
    auth_stack: AuthStack, as_alice: str, container_engine: Any, tmp_path: Path
) -> None:
    """The docker backend (real containers on Podman): the container's environment carries the
    run's token under both names and none of the service's auth settings; the token is revoked
    when the container is done. A project cannot ask for the service's secret."""
    experiment_id = Client().create_experiment("alice-docker-runs")
    out = tmp_path / "out"
    out.mkdir()
    command = (
        'printf %s "$MLGRID_TRACKING_TOKEN" > /out/token; '
        '[ "$MLGRID_TRACKING_TOKEN" = "$MLFLOW_TRACKING_TOKEN" ] && echo same-token; '
        'echo "secret: [$MLGRID_AUTH_SECRET], password: [$MLGRID_TRACKING_PASSWORD]"'
    )
    mlproject = (
        f"name: dockerized\ndocker_env:\n  image: {container_engine.tiny_image}\n"
        f"  volumes: ['{out}:/out:rw']\n"
        f"entry_points:\n  main:\n    command: {command!r}\n"
    )
    project = write(tmp_path / "p", {"MLproject": mlproject})
    submitted = projects.run(str(project), experiment_id=experiment_id, backend="docker")
    chunks = list(submitted.logs())
    stdout = b"".join(c.data for c in chunks if c.stream == "stdout").decode()
    assert submitted.get_status() == "FINISHED", b"".join(c.data for c in chunks).decode()
    assert stdout.splitlines() == ["same-token", "secret: [], password: []"]
    token = (out / "token").read_text()
    assert token.startswith("mlg_")
    time.sleep(CACHE_SECONDS + 0.2)
    tracking = trk_grpc.TrackingServiceStub(auth_stack.gateway())
    request = trk.GetRunRequest(run_id=submitted.run_id)
    assert code_of(lambda: tracking.GetRun(request, metadata=bearer(token))) == (
        grpc.StatusCode.UNAUTHENTICATED
    )

    asks = mlproject.replace("  volumes:", "  environment: ['MLGRID_AUTH_SECRET']\n  volumes:")
    project = write(tmp_path / "asks", {"MLproject": asks})
    with pytest.raises(MlgridException) as refused:
        projects.run(str(project), experiment_id=experiment_id, backend="docker")
    assert "MLGRID_AUTH_SECRET" in str(refused.value)
    assert "not copied into runs" in str(refused.value)


def _denial(call: Any) -> str:
    err = error_of(call)
    assert err.code() is grpc.StatusCode.PERMISSION_DENIED, err.details()
    return err.details() or ""


def _check_confined(
    tracking: Any, registry: Any, auth: Any, token: Any, user: str, own: str, other: str, model: str
) -> None:
    """What a run token of ``user`` for experiment ``own`` may and may not do."""
    # Its own experiment: new runs, logging, tags.
    run_id = tracking.CreateRun(
        trk.CreateRunRequest(experiment_id=own), metadata=token
    ).run.info.run_id
    tracking.LogMetric(
        trk.LogMetricRequest(run_id=run_id, key="m", value=1.0, timestamp=1),
        metadata=token,
    )
    tracking.SetExperimentTag(
        trk.SetExperimentTagRequest(experiment_id=own, key="k", value="v"),
        metadata=token,
    )
    # … but nothing deleted there, though alice may.
    assert (
        _denial(lambda: tracking.DeleteRun(trk.DeleteRunRequest(run_id=run_id), metadata=token))
        == f"DeleteRun needs MANAGE on experiment {own!r}; user {user!r} has EDIT"
    )
    assert "DeleteExperiment needs MANAGE" in _denial(
        lambda: tracking.DeleteExperiment(
            trk.DeleteExperimentRequest(experiment_id=own), metadata=token
        )
    )
    # Elsewhere it reads what alice reads, and writes nothing.
    assert (
        tracking.GetExperiment(
            trk.GetExperimentRequest(experiment_id=other), metadata=token
        ).experiment.name
        == "alice-other-experiment"
    )
    assert (
        _denial(
            lambda: tracking.CreateRun(trk.CreateRunRequest(experiment_id=other), metadata=token)
        )
        == f"CreateRun needs EDIT on experiment {other!r}; user {user!r} has READ"
    )
    registry.GetRegisteredModel(reg.GetRegisteredModelRequest(name=model), metadata=token)
    # It registers what it trains, as log_model(registered_model_name=...) does: a new model
    # and a version of an existing one (alice may edit both).
    made = f"from-run-{time.time_ns()}"
    registry.CreateRegisteredModel(reg.CreateRegisteredModelRequest(name=made), metadata=token)
    registry.UpdateRegisteredModel(
        reg.UpdateRegisteredModelRequest(name=model, description="d"), metadata=token
    )
    # alice became its creator (MANAGE); her run's token still deletes nothing.
    assert (
        _denial(
            lambda: registry.DeleteRegisteredModel(
                reg.DeleteRegisteredModelRequest(name=made), metadata=token
            )
        )
        == f"DeleteRegisteredModel needs MANAGE on registered model {made!r}; user {user!r} has EDIT"
    )
    assert "DeleteRegisteredModel needs MANAGE" in _denial(
        lambda: registry.DeleteRegisteredModel(
            reg.DeleteRegisteredModelRequest(name=model), metadata=token
        )
    )
    # Nothing new outside the run's experiment, and no management call at all.
    assert "CreateExperiment is not allowed with a project run's token" in _denial(
        lambda: tracking.CreateExperiment(
            trk.CreateExperimentRequest(name=f"from-run-{time.time_ns()}"), metadata=token
        )
    )
    for name, request in (
        ("ListAccessTokens", auth_pb.ListAccessTokensRequest()),
        ("CreateAccessToken", auth_pb.CreateAccessTokenRequest(name="escape")),
        ("RevokeAccessToken", auth_pb.RevokeAccessTokenRequest(name="laptop")),
        ("ListUsers", auth_pb.ListUsersRequest()),
        (
            "SetPermission",
            auth_pb.SetPermissionRequest(
                permission=auth_pb.Permission(
                    resource_type=auth_pb.RESOURCE_TYPE_EXPERIMENT,
                    resource_id=other,
                    username=user,
                    permission="MANAGE",
                )
            ),
        ),
    ):
        method = getattr(auth, name)
        assert f"{name} is not allowed with a project run's token" in _denial(
            lambda method=method, request=request: method(request, metadata=token)
        )
    who = auth.WhoAmI(auth_pb.WhoAmIRequest(), metadata=token)
    assert (who.subject, who.is_admin) == (user, False)


def test_a_run_token_works_in_its_experiment_reads_elsewhere_and_manages_nothing(
    auth_stack: AuthStack, as_alice: str, tmp_path: Path
) -> None:
    """alice may do everything on her experiments and model; her run's token may work in the
    run's experiment only, read the rest, and make no management call. Checked through the
    gateway port, and on the services' own ports (the services enforce it themselves)."""
    client = Client()
    own = client.create_experiment("alice-scoped-run")
    other = client.create_experiment("alice-other-experiment")  # alice has MANAGE on it
    model = f"alice-scoped-model-{time.time_ns()}"
    registry = reg_grpc.RegistryServiceStub(auth_stack.gateway())
    alice = basic(*ALICE)
    registry.CreateRegisteredModel(reg.CreateRegisteredModelRequest(name=model), metadata=alice)
    submitted = projects.run(
        str(write(tmp_path / "proj", WAITING)),
        parameters={"token_file": str(tmp_path / "token")},
        experiment_id=own,
        backend="local",
        synchronous=False,
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "token").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        token = bearer((tmp_path / "token").read_text())
        for channel, registry_channel, auth_channel in (
            (auth_stack.gateway(), auth_stack.gateway(), auth_stack.gateway()),
            (
                auth_stack.service_port("tracking"),
                auth_stack.service_port("registry"),
                auth_stack.service_port("tracking"),  # the auth service lives in tracking
            ),
        ):
            _check_confined(
                trk_grpc.TrackingServiceStub(channel),
                reg_grpc.RegistryServiceStub(registry_channel),
                auth_grpc.AuthServiceStub(auth_channel),
                token,
                as_alice,
                own,
                other,
                model,
            )
        # alice herself sees the token as confined to the run's experiment.
        listed = auth_stack.auth().ListAccessTokens(
            auth_pb.ListAccessTokensRequest(), metadata=alice
        )
        confined = [t for t in listed.access_tokens if t.name == f"project run {submitted.run_id}"]
        assert [t.experiment_id for t in confined] == [own]
    finally:
        submitted.cancel()
