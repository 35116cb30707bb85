"""Auth on a call pipeline: every pipelined call is checked as a call of its own would be, with
the credentials the stream was opened with, in the service (through the gateway's tunnel)."""

from __future__ import annotations

import time

import pytest

from mlgrid.api.auth.v1 import auth_service_pb2 as auth_pb
from mlgrid.api.common.v1 import common_pb2, common_pb2_grpc
from mlgrid.api.tracking.v1 import tracking_service_pb2 as trk
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as trk_grpc
from mlgrid.client import Client
from mlgrid.transport import Transport

from .conftest import AuthStack

TRACKING = "mlgrid.api.tracking.v1.TrackingService"
LOG_METRIC = f"/{TRACKING}/LogMetric"


def pipelined(
    auth_stack: AuthStack, credentials: list[tuple[str, str]], *requests: trk.LogMetricRequest
) -> list[common_pb2.CallPipelineServiceRunResponse]:
    channel = auth_stack.tunnel(TRACKING, credentials)
    calls = [
        common_pb2.CallPipelineServiceRunRequest(
            method=LOG_METRIC, request=request.SerializeToString()
        )
        for request in requests
    ]
    run = common_pb2_grpc.CallPipelineServiceStub(channel).Run
    return list(run(iter(calls), metadata=credentials, timeout=10))


def test_each_pipelined_call_needs_the_permission_its_own_call_needs(
    auth_stack: AuthStack,
) -> None:
    owner = auth_stack.create_user("pipeline-owner")
    writer = auth_stack.create_user("pipeline-writer")
    stub = trk_grpc.TrackingServiceStub(auth_stack.gateway())
    experiment_id, run_id = auth_stack.experiment_with_run(owner, "pipelined-experiment")
    point = trk.LogMetricRequest(run_id=run_id, key="loss", value=1.0, timestamp=1, step=0)

    refused = pipelined(auth_stack, writer, point)  # the writer only reads (the default)
    assert refused[0].code == 7  # PERMISSION_DENIED, as LogMetric on its own
    assert f"needs EDIT on experiment {experiment_id!r}" in refused[0].message
    assert refused[0].status_details  # the typed error's details travel too

    auth_stack.grant_on_experiment(owner, experiment_id, "pipeline-writer", "EDIT")
    second = trk.LogMetricRequest(run_id=run_id, key="loss", value=2.0, timestamp=2, step=1)
    deadline = time.monotonic() + 5  # a grant reaches the service within its auth cache time
    while (accepted := pipelined(auth_stack, writer, second))[0].code == 7:
        assert time.monotonic() < deadline, accepted[0].message
        time.sleep(0.1)
    assert [r.code for r in accepted] == [0]

    history = stub.GetMetricHistory(
        trk.GetMetricHistoryRequest(run_id=run_id, metric_key="loss"), metadata=owner
    )
    assert [(m.step, m.value) for m in history.metrics] == [(1, 2.0)]  # the refused one: none


def test_the_sdk_with_a_token_keeps_one_stream_for_its_writes(
    auth_stack: AuthStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stream is opened with the call metadata; with auth on that metadata (the token) is
    the same on every call, so one stream carries every write (a new one per call would cost
    more than no pipeline at all)."""
    credentials = auth_stack.create_user("pipeline-sdk-user")
    token = (
        auth_stack.auth()
        .CreateAccessToken(auth_pb.CreateAccessTokenRequest(name="sdk"), metadata=credentials)
        .token
    )
    monkeypatch.setenv("MLGRID_TRACKING_TOKEN", token)
    transport = Transport(auth_stack.stack.tracking_uri)
    try:
        client = Client(transport=transport)
        run_id = client.create_run(client.create_experiment("pipelined-by-sdk")).info.run_id
        for step in range(20):
            client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
        pipeline = transport._pipeline
        assert pipeline is not None and pipeline._stream is not None
        assert pipeline._stream.answered == 20
        assert len(client.get_metric_history(run_id, "loss")) == 20
    finally:
        transport.close()
