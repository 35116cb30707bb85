"""The tracking service through a real gRPC server on port 0 (SQLite and PostgreSQL)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from mlgrid._rpc_errors import from_rpc_error
from mlgrid.api.common.v1 import common_pb2, common_pb2_grpc
from mlgrid.api.tracking.v1 import tracking_pb2 as t
from mlgrid.api.tracking.v1 import tracking_service_pb2 as pb
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as pb_grpc
from mlgrid.exceptions import (
    InvalidParameterValue,
    MlgridException,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
)
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.server import start_server
from mlgrid_services.tracking.app import create

from .helpers import unique_name


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stub(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[pb_grpc.TrackingServiceStub]:
    if request.param == "sqlite":
        uri = f"sqlite:///{tmp_path_factory.mktemp('svc') / 'mlgrid.db'}"
    else:
        uri = request.getfixturevalue("postgres_url")
    root = (Path(tmp_path_factory.mktemp("art"))).as_uri()
    app = create(ServiceConfig(backend_store_uri=uri, default_artifact_root=root))
    running = start_server(app.services, port=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    stub = pb_grpc.TrackingServiceStub(channel)
    stub.info_stub = common_pb2_grpc.BackendInfoServiceStub(channel)  # type: ignore[attr-defined]
    yield stub
    channel.close()
    running.stop(0)
    app.close()


def call_error(fn, request) -> MlgridException:
    with pytest.raises(grpc.RpcError) as info:
        fn(request)
    return from_rpc_error(info.value)


def make_run(stub: pb_grpc.TrackingServiceStub) -> tuple[str, str]:
    experiment_id = stub.CreateExperiment(
        pb.CreateExperimentRequest(name=unique_name())
    ).experiment_id
    run = stub.CreateRun(pb.CreateRunRequest(experiment_id=experiment_id, user_id="u")).run
    return experiment_id, run.info.run_id


def test_backend_info_announces_sql_schemes(stub) -> None:
    info = stub.info_stub.GetBackendInfo(common_pb2.GetBackendInfoRequest())
    (served,) = [s for s in info.services if s.service.endswith("TrackingService")]
    assert {"sqlite", "postgresql", "postgresql+psycopg"} <= set(served.schemes)


def test_experiment_lifecycle_over_grpc(stub) -> None:
    name = unique_name()
    experiment_id = stub.CreateExperiment(
        pb.CreateExperimentRequest(name=name, tags=[common_pb2.Tag(key="a", value="b")])
    ).experiment_id
    got = stub.GetExperimentByName(pb.GetExperimentByNameRequest(experiment_name=name)).experiment
    assert got.experiment_id == experiment_id and got.artifact_location.endswith(
        f"/{experiment_id}"
    )
    stub.SetExperimentTag(
        pb.SetExperimentTagRequest(experiment_id=experiment_id, key="c", value="d")
    )
    stub.DeleteExperimentTag(pb.DeleteExperimentTagRequest(experiment_id=experiment_id, key="a"))
    renamed = unique_name("renamed")
    stub.UpdateExperiment(pb.UpdateExperimentRequest(experiment_id=experiment_id, new_name=renamed))
    got = stub.GetExperiment(pb.GetExperimentRequest(experiment_id=experiment_id)).experiment
    assert got.name == renamed and [(x.key, x.value) for x in got.tags] == [("c", "d")]
    stub.DeleteExperiment(pb.DeleteExperimentRequest(experiment_id=experiment_id))
    found = stub.SearchExperiments(
        pb.SearchExperimentsRequest(filter=f"name = '{renamed}'", view_type=2)
    ).experiments
    assert [e.experiment_id for e in found] == [experiment_id]
    stub.RestoreExperiment(pb.RestoreExperimentRequest(experiment_id=experiment_id))
    got = stub.GetExperiment(pb.GetExperimentRequest(experiment_id=experiment_id)).experiment
    assert got.lifecycle_stage == "active"


def test_run_logging_and_reading_over_grpc(stub) -> None:
    experiment_id, run_id = make_run(stub)
    stub.LogParam(pb.LogParamRequest(run_id=run_id, key="lr", value="0.01"))
    stub.LogMetric(pb.LogMetricRequest(run_id=run_id, key="acc", value=0.8, timestamp=1, step=1))
    stub.SetTag(pb.SetTagRequest(run_id=run_id, key="team", value="x"))
    stub.LogBatch(
        pb.LogBatchRequest(
            run_id=run_id,
            metrics=[t.Metric(key="loss", value=float(i), timestamp=i, step=i) for i in range(5)],
            params=[t.Param(key="bs", value="32")],
        )
    )
    run = stub.GetRun(pb.GetRunRequest(run_id=run_id)).run
    assert {p.key: p.value for p in run.data.params} == {"lr": "0.01", "bs": "32"}
    assert {m.key: m.value for m in run.data.metrics} == {"acc": 0.8, "loss": 4.0}
    found = stub.SearchRuns(
        pb.SearchRunsRequest(
            experiment_ids=[experiment_id],
            filter="metrics.acc > 0.5 and (params.lr = '0.01' or tags.team = 'y')",
            order_by=["metrics.acc DESC"],
        )
    ).runs
    assert [r.info.run_id for r in found] == [run_id]
    info = stub.UpdateRun(
        pb.UpdateRunRequest(run_id=run_id, status=t.RUN_STATUS_FINISHED, end_time=5)
    ).run_info
    assert info.status == t.RUN_STATUS_FINISHED and info.end_time == 5
    stub.DeleteTag(pb.DeleteTagRequest(run_id=run_id, key="team"))
    stub.DeleteRun(pb.DeleteRunRequest(run_id=run_id))
    err = call_error(stub.LogParam, pb.LogParamRequest(run_id=run_id, key="x", value="1"))
    assert isinstance(err, InvalidParameterValue)
    stub.RestoreRun(pb.RestoreRunRequest(run_id=run_id))
    stub.LogParam(pb.LogParamRequest(run_id=run_id, key="x", value="1"))


def test_history_paged_streamed_and_sampled(stub) -> None:
    _, run_id = make_run(stub)
    points = [t.Metric(key="h", value=i * 0.5, timestamp=i, step=i) for i in range(25_000)]
    points[7].value = math.nan
    ingest = stub.IngestMetrics(
        iter(
            [
                pb.IngestMetricsRequest(run_id=run_id, metrics=points[i : i + 5000])
                for i in range(0, 25_000, 5000)
            ]
        )
    )
    assert ingest.metrics_written == 25_000
    chunks = list(
        stub.StreamMetricHistory(pb.StreamMetricHistoryRequest(run_id=run_id, metric_key="h"))
    )
    assert [len(c.metrics) for c in chunks] == [10_000, 10_000, 5_000]
    streamed = [m for c in chunks for m in c.metrics]
    assert [m.step for m in streamed] == list(range(25_000))
    assert math.isnan(streamed[7].value) and streamed[8].value == 4.0
    page = stub.GetMetricHistory(
        pb.GetMetricHistoryRequest(run_id=run_id, metric_key="h", max_results=100)
    )
    assert len(page.metrics) == 100 and page.next_page_token
    second = stub.GetMetricHistory(
        pb.GetMetricHistoryRequest(
            run_id=run_id, metric_key="h", max_results=100, page_token=page.next_page_token
        )
    )
    assert second.metrics[0].step == 100
    sampled = stub.GetMetricHistoryBulkInterval(
        pb.GetMetricHistoryBulkIntervalRequest(run_ids=[run_id], metric_key="h", start_step=100)
    ).metrics
    steps = [s.metric.step for s in sampled]
    assert len(steps) == 2500 and steps[0] == 100 and steps[-1] == 24_999


def test_ingest_stops_at_the_first_invalid_message_keeping_earlier_ones(stub) -> None:
    _, run_id = make_run(stub)
    messages = [
        pb.IngestMetricsRequest(run_id=run_id, metrics=[t.Metric(key="i", value=1.0, timestamp=1)]),
        pb.IngestMetricsRequest(run_id=run_id, metrics=[t.Metric(key="bad?", value=1.0)]),
        pb.IngestMetricsRequest(run_id=run_id, metrics=[t.Metric(key="i", value=2.0, timestamp=2)]),
    ]
    with pytest.raises(grpc.RpcError) as info:
        stub.IngestMetrics(iter(messages))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "bad?" in info.value.details()
    history = stub.GetMetricHistory(pb.GetMetricHistoryRequest(run_id=run_id, metric_key="i"))
    assert [m.value for m in history.metrics] == [1.0]


def test_log_inputs_over_grpc(stub) -> None:
    _, run_id = make_run(stub)
    dataset = t.Dataset(name="ds", digest="1", source_type="local", source="{}")
    stub.LogInputs(pb.LogInputsRequest(run_id=run_id, datasets=[t.DatasetInput(dataset=dataset)]))
    run = stub.GetRun(pb.GetRunRequest(run_id=run_id)).run
    assert [i.dataset.name for i in run.inputs.dataset_inputs] == ["ds"]


@pytest.mark.parametrize(
    ("method", "request_", "status", "exc", "text"),
    [
        ("GetRun", pb.GetRunRequest(run_id="0" * 32), "NOT_FOUND", ResourceDoesNotExist, "0" * 32),
        (
            "GetExperiment",
            pb.GetExperimentRequest(experiment_id="424242"),
            "NOT_FOUND",
            ResourceDoesNotExist,
            "424242",
        ),
        (
            "CreateExperiment",
            pb.CreateExperimentRequest(name="Default"),
            "ALREADY_EXISTS",
            ResourceAlreadyExists,
            "Default",
        ),
        (
            "SearchRuns",
            pb.SearchRunsRequest(experiment_ids=["0"], filter="metrics.acc >> 1"),
            "INVALID_ARGUMENT",
            InvalidParameterValue,
            "at character 14",
        ),
        (
            "LogParam",
            pb.LogParamRequest(run_id="0" * 32, key="x" * 300, value="1"),
            "INVALID_ARGUMENT",
            InvalidParameterValue,
            "param key",
        ),
        (
            "SearchExperiments",
            pb.SearchExperimentsRequest(page_token="not-a-token"),
            "INVALID_ARGUMENT",
            InvalidParameterValue,
            "page_token",
        ),
    ],
)
def test_errors_arrive_as_status_and_error_info(stub, method, request_, status, exc, text) -> None:
    with pytest.raises(grpc.RpcError) as info:
        getattr(stub, method)(request_)
    assert info.value.code() == getattr(grpc.StatusCode, status)
    (detail,) = rpc_status.from_call(info.value).details
    reason = error_details_pb2.ErrorInfo()
    detail.Unpack(reason)
    assert reason.reason == exc.error_code
    typed = from_rpc_error(info.value)
    assert type(typed) is exc
    assert text in typed.message


def test_param_conflict_over_grpc_is_invalid_argument(stub) -> None:
    _, run_id = make_run(stub)
    stub.LogParam(pb.LogParamRequest(run_id=run_id, key="p", value="1"))
    stub.LogParam(pb.LogParamRequest(run_id=run_id, key="p", value="1"))
    err = call_error(stub.LogParam, pb.LogParamRequest(run_id=run_id, key="p", value="2"))
    assert isinstance(err, InvalidParameterValue) and "Changing param values" in err.message


# ---------------------------------------------------------------- MLflow 3 logged models


def test_logged_model_lifecycle_over_grpc(stub) -> None:
    experiment_id, run_id = make_run(stub)
    model = stub.CreateLoggedModel(
        pb.CreateLoggedModelRequest(
            experiment_id=experiment_id,
            name="clf",
            source_run_id=run_id,
            params=[t.Param(key="alpha", value="0.1")],
            tags=[common_pb2.Tag(key="k", value="v")],
        )
    ).model
    model_id = model.info.model_id
    assert model.info.status == t.LOGGED_MODEL_STATUS_PENDING
    stub.LogOutputs(pb.LogOutputsRequest(run_id=run_id, models=[t.ModelOutput(model_id=model_id)]))
    stub.LogMetric(
        pb.LogMetricRequest(
            run_id=run_id,
            key="acc",
            value=0.9,
            timestamp=1,
            model_id=model_id,
            dataset_name="test",
            dataset_digest="abc",
        )
    )
    stub.LogLoggedModelParams(
        pb.LogLoggedModelParamsRequest(model_id=model_id, params=[t.Param(key="d", value="3")])
    )
    tagged = stub.SetLoggedModelTags(
        pb.SetLoggedModelTagsRequest(model_id=model_id, tags=[common_pb2.Tag(key="k2", value="w")])
    ).model
    assert {x.key for x in tagged.info.tags} == {"k", "k2"}
    stub.DeleteLoggedModelTag(pb.DeleteLoggedModelTagRequest(model_id=model_id, tag_key="k"))
    final = stub.FinalizeLoggedModel(
        pb.FinalizeLoggedModelRequest(model_id=model_id, status=t.LOGGED_MODEL_STATUS_READY)
    ).model
    assert final.info.status == t.LOGGED_MODEL_STATUS_READY
    assert [(m.key, m.value, m.dataset_digest) for m in final.data.metrics] == [("acc", 0.9, "abc")]
    assert {p.key for p in final.data.params} == {"alpha", "d"}
    found = stub.SearchLoggedModels(
        pb.SearchLoggedModelsRequest(
            experiment_ids=[experiment_id],
            filter="metrics.acc >= 0.9 AND status = 'READY'",
            datasets=[pb.LoggedModelDatasetFilter(dataset_name="test", dataset_digest="abc")],
            order_by=[pb.LoggedModelOrderBy(field_name="metrics.acc", ascending=False)],
        )
    )
    assert [m.info.model_id for m in found.models] == [model_id] and not found.next_page_token
    run = stub.GetRun(pb.GetRunRequest(run_id=run_id)).run
    assert [o.model_id for o in run.outputs.model_outputs] == [model_id]
    stub.DeleteLoggedModel(pb.DeleteLoggedModelRequest(model_id=model_id))
    err = call_error(stub.GetLoggedModel, pb.GetLoggedModelRequest(model_id=model_id))
    assert isinstance(err, ResourceDoesNotExist)
    got = stub.GetLoggedModel(pb.GetLoggedModelRequest(model_id=model_id, allow_deleted=True))
    assert got.model.info.name == "clf"


def test_logged_model_errors_over_grpc(stub) -> None:
    err = call_error(
        stub.CreateLoggedModel, pb.CreateLoggedModelRequest(experiment_id="0", name="a:b")
    )
    assert isinstance(err, InvalidParameterValue) and "logged model name" in err.message
    err = call_error(
        stub.SearchLoggedModels,
        pb.SearchLoggedModelsRequest(experiment_ids=["0"], filter="params.x > 1"),
    )
    assert isinstance(err, InvalidParameterValue) and "operator >" in err.message
