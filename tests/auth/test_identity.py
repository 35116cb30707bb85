"""Who the services take a caller for: signed assertions (never from callers), tokens, a user
removed while its client is connected, tunnels that refuse CONNECTs without credentials, and
servers that will not start open on a public address."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

import mlgrid
from mlgrid.api.auth.v1 import auth_service_pb2 as auth_pb
from mlgrid.api.tracking.v1 import tracking_service_pb2 as trk
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as trk_grpc
from mlgrid.exceptions import Unauthenticated
from mlgrid.protocol import IDENTITY_METADATA
from mlgrid_services.common.auth.assertion import AssertionSigner
from mlgrid_services.common.auth.identity import Identity

from .conftest import ADMIN, SECRET, AuthStack, error_of

TRACKING = "mlgrid.api.tracking.v1.TrackingService"


def _search(channel: grpc.Channel, metadata: list[tuple[str, str]] | None) -> object:
    stub = trk_grpc.TrackingServiceStub(channel)
    return lambda: stub.SearchExperiments(trk.SearchExperimentsRequest(), metadata=metadata)


def test_a_signed_assertion_is_accepted_on_a_service_port(auth_stack: AuthStack) -> None:
    assertion = AssertionSigner(SECRET).sign(Identity(ADMIN[0], True))
    answer = _search(auth_stack.service_port("tracking"), [(IDENTITY_METADATA, assertion)])()
    assert answer is not None


@pytest.mark.parametrize("fault", ["tampered", "expired", "other secret"])
def test_a_bad_assertion_is_unauthenticated(auth_stack: AuthStack, fault: str) -> None:
    signer = AssertionSigner(SECRET if fault != "other secret" else "x" * 40)
    now = time.time() - 3600 if fault == "expired" else None
    assertion = signer.sign(Identity(ADMIN[0], True), now=now)
    if fault == "tampered":
        _, signature = assertion.split(".")
        forged = AssertionSigner("y" * 40).sign(Identity("root", True)).split(".")[0]
        assertion = f"{forged}.{signature}"
    err = error_of(_search(auth_stack.service_port("tracking"), [(IDENTITY_METADATA, assertion)]))
    assert err.code() is grpc.StatusCode.UNAUTHENTICATED
    expected = "expired" if fault == "expired" else "not signed by this deployment"
    assert expected in (err.details() or "")


def test_callers_cannot_send_an_assertion_through_the_gateway(auth_stack: AuthStack) -> None:
    """The gateway drops mlgrid-internal-* metadata: a valid assertion from outside is ignored."""
    assertion = AssertionSigner(SECRET).sign(Identity(ADMIN[0], True))
    err = error_of(_search(auth_stack.gateway(), [(IDENTITY_METADATA, assertion)]))
    assert err.code() is grpc.StatusCode.UNAUTHENTICATED


def test_wrong_password_and_unknown_token_are_unauthenticated(auth_stack: AuthStack) -> None:
    auth_stack.create_user("mallory-victim", "right-password")
    for metadata in (
        [
            (
                "authorization",
                "Basic "
                + __import__("base64").b64encode(b"mallory-victim:wrong-password").decode(),
            )
        ],
        [("authorization", "Bearer mlg_not-a-token")],
        [("authorization", "Digest whatever")],
    ):
        err = error_of(_search(auth_stack.gateway(), metadata))
        assert err.code() is grpc.StatusCode.UNAUTHENTICATED, metadata


def test_tunnel_connect_without_credentials_is_refused(auth_stack: AuthStack) -> None:
    channel = auth_stack.tunnel(TRACKING, None)
    err = error_of(_search(channel, auth_stack.admin))
    # gRPC reports the proxy's refusal as UNAVAILABLE; the SDK then uses the gateway port.
    assert err.code() is grpc.StatusCode.UNAVAILABLE


def test_tokens_work_until_revoked(auth_stack: AuthStack) -> None:
    credentials = auth_stack.create_user("token-owner")
    created = auth_stack.auth().CreateAccessToken(
        auth_pb.CreateAccessTokenRequest(name="ci"), metadata=credentials
    )
    bearer = [("authorization", f"Bearer {created.token}")]
    who = auth_stack.auth().WhoAmI(auth_pb.WhoAmIRequest(), metadata=bearer)
    assert who.subject == "token-owner" and not who.is_admin
    listed = auth_stack.auth().ListAccessTokens(auth_pb.ListAccessTokensRequest(), metadata=bearer)
    assert [t.name for t in listed.access_tokens] == ["ci"]
    assert created.token not in str(listed)
    auth_stack.auth().RevokeAccessToken(
        auth_pb.RevokeAccessTokenRequest(token_id=created.access_token.token_id),
        metadata=credentials,
    )
    _eventually_unauthenticated(lambda: _search(auth_stack.gateway(), bearer)())


def _eventually_unauthenticated(call: object, within: float = 10.0) -> str:
    deadline = time.monotonic() + within
    while True:
        try:
            call()  # type: ignore[operator]
        except grpc.RpcError as err:
            if err.code() is grpc.StatusCode.UNAUTHENTICATED:
                return err.details() or ""
            raise
        except Unauthenticated as exc:
            return exc.message
        assert time.monotonic() < deadline, "still accepted"
        time.sleep(0.1)


def test_a_user_removed_while_its_client_is_connected_is_refused(
    auth_stack: AuthStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An SDK client logging (credentials from the environment) loses access
    within the cache time once an admin deletes the user; nothing it sends afterwards lands."""
    auth_stack.create_user("leaver", "leaver-password")
    monkeypatch.setenv("MLGRID_TRACKING_USERNAME", "leaver")
    monkeypatch.setenv("MLGRID_TRACKING_PASSWORD", "leaver-password")
    client = mlgrid.MlflowClient(tracking_uri=auth_stack.stack.tracking_uri)
    experiment_id = client.create_experiment("leaver-experiment")
    run_id = client.create_run(experiment_id).info.run_id
    # Through its tunnel, or the gateway port when the tunnel was not up within the SDK's 2 s
    # on a busy machine: either way the removal must take effect.
    client.log_metric(run_id, "m", 1.0)
    auth_stack.auth().DeleteUser(
        auth_pb.DeleteUserRequest(username="leaver"), metadata=auth_stack.admin
    )
    message = _eventually_unauthenticated(lambda: client.log_metric(run_id, "m", 2.0))
    assert "leaver" in message or "not valid" in message
    admin = trk_grpc.TrackingServiceStub(auth_stack.gateway())
    history = admin.GetMetricHistory(
        trk.GetMetricHistoryRequest(run_id=run_id, metric_key="m"), metadata=auth_stack.admin
    )
    assert history.metrics[0].value == 1.0


def _server(args: list[str], tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MLGRID_", "MLFLOW_"))}
    environment.update(extra)
    return subprocess.run(
        [sys.executable, "-m", "mlgrid.cli.main", "server", *args],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("name", ["gateway", "tracking"])
def test_a_public_address_without_auth_refuses_to_start(tmp_path: Path, name: str) -> None:
    done = _server([name, "--host", "0.0.0.0", "--port", "0"], tmp_path)
    assert done.returncode != 0
    assert "without authentication" in done.stderr and "--allow-open" in done.stderr


def test_auth_on_without_a_secret_refuses_to_start(tmp_path: Path) -> None:
    done = _server(["tracking", "--port", "0"], tmp_path, MLGRID_AUTH="true")
    assert done.returncode != 0 and "MLGRID_AUTH_SECRET" in done.stderr
