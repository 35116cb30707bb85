"""Hostile input through the real gateway and services, on SQLite and on PostgreSQL: every RPC
that takes a filter, an id list, a path, a URI or free text refuses oversized or malicious input
quickly, with INVALID_ARGUMENT naming the limit, in a message that neither echoes the input
unbounded nor names a server path; and the service answers the next ordinary call."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
import pytest

from mlgrid.api.artifacts.v1 import artifacts_service_pb2 as apb
from mlgrid.api.artifacts.v1 import artifacts_service_pb2_grpc as apb_grpc
from mlgrid.api.registry.v1 import registry_service_pb2 as rpb
from mlgrid.api.registry.v1 import registry_service_pb2_grpc as rpb_grpc
from mlgrid.api.tracking.v1 import tracking_service_pb2 as tpb
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as tpb_grpc
from mlgrid.limits import MAX_ERROR_MESSAGE_CHARS

#: Seconds any refusal may take (the payloads below once took 60 s of CPU).
QUICK = 5.0

OR_20K = " OR ".join(f"metrics.m{i} > 1" for i in range(20_000))
TEN_MB = "params.a = '" + "x" * 10_000_000 + "'"
NESTED_5K = "(" * 5_000 + "metrics.a > 1" + ")" * 5_000
#: Under the length limit, over the comparisons limit.
OR_600 = " OR ".join(f"metrics.m{i} > 1" for i in range(600))
REGISTRY_AND_600 = " AND ".join(f"name = 'm{i}'" for i in range(600))
REGISTRY_TEN_MB = "name = '" + "x" * 10_000_000 + "'"

HOSTILE_FILTERS = {
    "20,000 ORs": (OR_20K, "MAX_FILTER_CHARS"),
    "10 MB": (TEN_MB, "MAX_FILTER_CHARS"),
    "5,000 nested parentheses": (NESTED_5K, "MAX_FILTER_DEPTH"),
    "600 comparisons": (OR_600, "MAX_FILTER_COMPARISONS"),
}


@pytest.fixture(params=["sqlite", "postgres"])
def stack(request: pytest.FixtureRequest):
    name = "grpc_stack" if request.param == "sqlite" else "grpc_stack_pg"
    return request.getfixturevalue(name)


SERVER_PATHS = ("/tmp/", "/work/", "/root/", "site-packages", "Traceback")


def refused(
    call: Callable[[], object],
    code: grpc.StatusCode,
    *names: str,
    server_paths: tuple[str, ...] = SERVER_PATHS,
) -> str:
    """Runs ``call``, which must fail quickly with ``code``; returns the error message after
    checking it is bounded, names each of ``names`` and shows none of ``server_paths`` (which
    leave out what the request itself named)."""
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        call()
    elapsed = time.monotonic() - started
    details = info.value.details() or ""
    assert info.value.code() == code, details
    assert elapsed < QUICK, f"refused after {elapsed:.1f} s"
    assert len(details) <= MAX_ERROR_MESSAGE_CHARS
    for name in names:
        assert name in details, details
    for server_path in server_paths:
        assert server_path not in details, details
    return details


def test_run_search_refuses_filters_over_the_limits(stack) -> None:
    tracking = tpb_grpc.TrackingServiceStub(stack.channel())
    experiment = tracking.CreateExperiment(tpb.CreateExperimentRequest(name=f"h-{time.time()}"))
    for text, limit in HOSTILE_FILTERS.values():
        request = tpb.SearchRunsRequest(experiment_ids=[experiment.experiment_id], filter=text)
        refused(lambda r=request: tracking.SearchRuns(r), grpc.StatusCode.INVALID_ARGUMENT, limit)
    # The service is still there for an ordinary search.
    ok = tracking.SearchRuns(
        tpb.SearchRunsRequest(experiment_ids=[experiment.experiment_id], filter="metrics.a > 1")
    )
    assert list(ok.runs) == []


def test_experiment_search_refuses_filters_over_the_limits(stack) -> None:
    tracking = tpb_grpc.TrackingServiceStub(stack.channel())
    for text, limit in HOSTILE_FILTERS.values():
        text = text.replace("metrics.", "tags.").replace("> 1", "= 'x'")
        request = tpb.SearchExperimentsRequest(filter=text)
        refused(
            lambda r=request: tracking.SearchExperiments(r), grpc.StatusCode.INVALID_ARGUMENT, limit
        )


def test_registry_searches_refuse_filters_over_the_limits(stack) -> None:
    registry = rpb_grpc.RegistryServiceStub(stack.channel())
    for text, limit in [
        (REGISTRY_TEN_MB, "MAX_FILTER_CHARS"),
        (REGISTRY_AND_600, "MAX_FILTER_COMPARISONS"),
    ]:
        refused(
            lambda t=text: registry.SearchRegisteredModels(
                rpb.SearchRegisteredModelsRequest(filter=t)
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            limit,
        )
        refused(
            lambda t=text: registry.SearchModelVersions(rpb.SearchModelVersionsRequest(filter=t)),
            grpc.StatusCode.INVALID_ARGUMENT,
            limit,
        )


def test_order_by_lists_are_bounded(stack) -> None:
    tracking = tpb_grpc.TrackingServiceStub(stack.channel())
    clauses = ["attributes.start_time DESC"] * 1_000
    refused(
        lambda: tracking.SearchRuns(tpb.SearchRunsRequest(experiment_ids=["0"], order_by=clauses)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "MAX_ORDER_BY_CLAUSES",
    )


def test_run_search_refuses_100k_experiment_ids_as_bad_input_not_as_an_outage(stack) -> None:
    tracking = tpb_grpc.TrackingServiceStub(stack.channel())
    ids = [str(i) for i in range(100_000)]
    refused(
        lambda: tracking.SearchRuns(tpb.SearchRunsRequest(experiment_ids=ids)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "MAX_IDS_PER_REQUEST",
    )


def test_oversized_free_text_is_refused_with_a_bounded_message(stack) -> None:
    tracking = tpb_grpc.TrackingServiceStub(stack.channel())
    registry = rpb_grpc.RegistryServiceStub(stack.channel())
    huge = "n" * 1_000_000
    run = tracking.CreateRun(tpb.CreateRunRequest(experiment_id="0")).run
    calls = {
        "experiment name": lambda: tracking.CreateExperiment(
            tpb.CreateExperimentRequest(name=huge)
        ),
        "experiment location": lambda: tracking.CreateExperiment(
            tpb.CreateExperimentRequest(name=f"loc-{time.time()}", artifact_location="/" + huge)
        ),
        "param value": lambda: tracking.LogParam(
            tpb.LogParamRequest(run_id=run.info.run_id, key="k", value=huge)
        ),
        "tag key": lambda: tracking.SetTag(
            tpb.SetTagRequest(run_id=run.info.run_id, key=huge, value="v")
        ),
        "run id": lambda: tracking.GetRun(tpb.GetRunRequest(run_id=huge)),
        "model name": lambda: registry.CreateRegisteredModel(
            rpb.CreateRegisteredModelRequest(name=huge)
        ),
        "model description": lambda: registry.CreateRegisteredModel(
            rpb.CreateRegisteredModelRequest(name=f"m-{time.time()}", description=huge * 2)
        ),
        "version source": lambda: registry.CreateModelVersion(
            rpb.CreateModelVersionRequest(name="whatever", source="/" + huge)
        ),
        "page token": lambda: tracking.SearchRuns(
            tpb.SearchRunsRequest(experiment_ids=["0"], page_token=huge)
        ),
    }
    for what, call in calls.items():
        details = refused(call, grpc.StatusCode.INVALID_ARGUMENT)
        assert huge[:1000] not in details, what


def test_artifact_paths_over_the_limits_name_the_limit_and_no_server_path(stack) -> None:
    artifacts = apb_grpc.ArtifactsServiceStub(stack.channel())
    root = stack.artifact_root + "/hostile"
    long_segment = "s" * 300  # over NAME_MAX: the file system itself would refuse it
    refused(
        lambda: artifacts.ListArtifacts(
            apb.ListArtifactsRequest(artifact_uri=root, path=long_segment)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "MAX_PATH_SEGMENT_BYTES",
    )
    refused(
        lambda: artifacts.UploadArtifact(
            iter(
                [
                    apb.UploadArtifactRequest(
                        artifact_uri=root, path=long_segment, data=b"x", last=True
                    )
                ]
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "MAX_PATH_SEGMENT_BYTES",
    )
    refused(
        lambda: artifacts.ListArtifacts(
            apb.ListArtifactsRequest(artifact_uri=root, path="d/" * 3000)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "MAX_PATH_CHARS",
        server_paths=("site-packages", "Traceback"),  # it may quote the start of its own URI
    )
    refused(
        lambda: artifacts.ListArtifacts(
            apb.ListArtifactsRequest(artifact_uri=root + "/" + "u" * 5000, path="")
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "MAX_PATH_CHARS",
        server_paths=("site-packages", "Traceback"),  # it may quote the start of its own URI
    )


def test_metric_history_bulk_interval_bounds_its_run_ids(stack) -> None:
    tracking = tpb_grpc.TrackingServiceStub(stack.channel())
    ids = [f"{i:032x}" for i in range(1_000)]
    refused(
        lambda: tracking.GetMetricHistoryBulkInterval(
            tpb.GetMetricHistoryBulkIntervalRequest(run_ids=ids, metric_key="m")
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "run_ids",
    )


def test_messages_that_do_not_parse_are_the_clients_error_and_hold_nothing(tmp_path) -> None:
    """A request whose bytes are not its message is refused with INVALID_ARGUMENT naming the
    method (grpcio's own answer would be INTERNAL, "the server failed"), as a unary call, a
    streamed message, a pipelined call and the pipeline's own message. None of them is left
    behind: grpcio (1.85) leaked a client-streaming call whose message it failed to parse, and
    30 of them held the service's stop for ever before the stop was bounded."""
    from mlgrid.api.common.v1 import common_pb2
    from mlgrid.client import Client
    from mlgrid.transport import Transport
    from tests.fixtures.stack import start_stack

    garbage = b"\xff" * 32
    stack = start_stack(tmp_path, services=["tracking"])
    transport = Transport(stack.tracking_uri)
    service = "/mlgrid.api.tracking.v1.TrackingService"
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{stack.servers['tracking'].port}")
        raw = {"request_serializer": lambda data: data, "response_deserializer": lambda d: d}
        calls = {
            "LogMetric": lambda: channel.unary_unary(f"{service}/LogMetric", **raw)(
                garbage, timeout=QUICK
            ),
            "IngestMetrics": lambda: channel.stream_unary(f"{service}/IngestMetrics", **raw)(
                iter([garbage]), timeout=QUICK
            ),
            "Run": lambda: list(
                channel.stream_stream("/mlgrid.api.common.v1.CallPipelineService/Run", **raw)(
                    iter([garbage]), timeout=QUICK
                )
            ),
        }
        for method, call in calls.items():
            for _ in range(10):
                with pytest.raises(grpc.RpcError) as refused:
                    call()
                assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT, method
                assert f"/{method} is not a valid message of its type" in refused.value.details()
                assert "32 bytes received" in refused.value.details()
        # A pipelined call whose request does not parse: that call's reply says so, and the
        # pipeline goes on.
        pipeline = channel.stream_stream(
            "/mlgrid.api.common.v1.CallPipelineService/Run",
            request_serializer=common_pb2.CallPipelineServiceRunRequest.SerializeToString,
            response_deserializer=common_pb2.CallPipelineServiceRunResponse.FromString,
        )
        replies = list(
            pipeline(
                iter(
                    [
                        common_pb2.CallPipelineServiceRunRequest(
                            method=f"{service}/LogMetric", request=garbage
                        ),
                        common_pb2.CallPipelineServiceRunRequest(
                            method=f"{service}/GetRun", request=garbage
                        ),
                    ]
                ),
                timeout=QUICK,
            )
        )
        assert [r.code for r in replies] == [grpc.StatusCode.INVALID_ARGUMENT.value[0]] * 2
        assert "/LogMetric is not a valid message of its type" in replies[0].message
        channel.close()
        client = Client(transport=transport)
        run_id = client.create_run(client.create_experiment("after-garbage")).info.run_id
        client.log_metric(run_id, "still", 1.0)
        assert client.get_run(run_id).data.metrics == {"still": 1.0}
    finally:
        transport.close()
        started = time.monotonic()
        stack.stop()
        stopped_in = time.monotonic() - started
    # No call left behind: the stop takes the gateway's and the service's 1 s of grace at most,
    # not the 5 s the service's stop would wait past its grace for a leaked call.
    assert stopped_in < 4
