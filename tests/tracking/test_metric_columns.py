"""LogBatchRequest.metric_columns: metric points as columns, on SQLite and PostgreSQL."""

from __future__ import annotations

import math

import grpc
import pytest

from mlgrid.api.tracking.v1 import tracking_pb2 as t
from mlgrid.api.tracking.v1 import tracking_service_pb2 as pb
from mlgrid.exceptions import InvalidParameterValue

from . import test_servicer
from .test_servicer import call_error, make_run

#: The tracking service on SQLite and on PostgreSQL, as in test_servicer.
stub = test_servicer.stub


def history(stub, run_id: str, key: str) -> list[tuple[float, int, int]]:
    request = pb.GetMetricHistoryRequest(run_id=run_id, metric_key=key, max_results=1000)
    points = stub.GetMetricHistory(request).metrics
    return sorted((m.value, m.timestamp, m.step) for m in points)


def test_columns_and_messages_of_one_batch_are_all_logged(stub) -> None:
    _, run_id = make_run(stub)
    columns = pb.MetricColumns(
        keys=["loss", "acc"],
        key_index=[0, 1, 0, 1],
        values=[0.5, 0.7, 0.4, math.inf],
        timestamps=[10, 10, 20, 20],
        steps=[1, 1, 2, 2],
    )
    answer = stub.LogBatch(
        pb.LogBatchRequest(
            run_id=run_id,
            metrics=[t.Metric(key="loss", value=0.6, timestamp=5, step=0)],
            metric_columns=columns,
            params=[t.Param(key="lr", value="0.1")],
        )
    )
    assert answer.metrics_received == 5
    assert history(stub, run_id, "loss") == [(0.4, 20, 2), (0.5, 10, 1), (0.6, 5, 0)]
    largest = 1.7976931348623157e308  # +inf is stored clamped, as MLflow does
    assert history(stub, run_id, "acc") == [(0.7, 10, 1), (largest, 20, 2)]
    run = stub.GetRun(pb.GetRunRequest(run_id=run_id)).run
    assert {m.key: m.step for m in run.data.metrics} == {"loss": 2, "acc": 2}
    assert [(p.key, p.value) for p in run.data.params] == [("lr", "0.1")]


def test_one_key_needs_no_key_index(stub) -> None:
    _, run_id = make_run(stub)
    columns = pb.MetricColumns(keys=["h"], values=[1.0, 2.0], timestamps=[1, 2], steps=[0, 1])
    stub.LogBatch(pb.LogBatchRequest(run_id=run_id, metric_columns=columns))
    assert history(stub, run_id, "h") == [(1.0, 1, 0), (2.0, 2, 1)]


@pytest.mark.parametrize(
    ("columns", "says"),
    [
        (
            pb.MetricColumns(keys=["a"], values=[1.0, 2.0], timestamps=[1], steps=[0, 1]),
            "metric_columns.timestamps has 1 entries but metric_columns.values has 2",
        ),
        (
            pb.MetricColumns(keys=["a", "b"], values=[1.0], timestamps=[1], steps=[0]),
            "key_index may only be empty when metric_columns.keys has exactly one entry",
        ),
        (
            pb.MetricColumns(
                keys=["a"], key_index=[0, 3], values=[1, 2], timestamps=[1, 2], steps=[0, 1]
            ),
            "metric_columns.key_index 3 is out of range",
        ),
        (
            pb.MetricColumns(keys=["a"], values=[1.0], timestamps=[-1], steps=[0]),
            "Invalid timestamp -1 of metric 'a'",
        ),
        (
            pb.MetricColumns(keys=["../x"], values=[1.0], timestamps=[1], steps=[0]),
            "metric key",
        ),
        (
            pb.MetricColumns(
                keys=["a"], values=[0.0] * 1001, timestamps=[1] * 1001, steps=[0] * 1001
            ),
            "1001",
        ),
    ],
)
def test_bad_columns_are_refused_naming_the_field_and_nothing_is_written(
    stub,
    columns: pb.MetricColumns,
    says: str,
) -> None:
    _, run_id = make_run(stub)
    err = call_error(
        stub.LogBatch,
        pb.LogBatchRequest(
            run_id=run_id, metric_columns=columns, params=[t.Param(key="p", value="1")]
        ),
    )
    assert isinstance(err, InvalidParameterValue)
    assert says in str(err)
    run = stub.GetRun(pb.GetRunRequest(run_id=run_id)).run
    assert not run.data.params and not run.data.metrics


def test_the_sdk_sends_large_batches_as_columns_and_small_ones_as_messages(grpc_stack) -> None:
    """What goes on the wire, seen by a server interceptor would be invasive; the response's
    count and the stored history show both forms arrived whole."""
    import mlgrid
    from mlgrid.batching import COLUMNS_ABOVE
    from mlgrid.entities import Metric

    client = mlgrid.MlflowClient(grpc_stack.tracking_uri)
    run_id = client.create_run(client.create_experiment("columns-sdk")).info.run_id
    big = [Metric("big", i * 0.5, 1000 + i, i) for i in range(COLUMNS_ABOVE + 5)]
    small = [Metric("small", 1.0, 7, 0)]
    client.log_batch(run_id, metrics=big + small)
    assert [m.value for m in client.get_metric_history(run_id, "big")] == [
        i * 0.5 for i in range(COLUMNS_ABOVE + 5)
    ]
    assert [m.value for m in client.get_metric_history(run_id, "small")] == [1.0]


class _OldServer:
    """A LogBatch stub that behaves like a server predating metric_columns: it ignores them."""

    def __init__(self, real) -> None:
        self.real = real
        self.requests: list[pb.LogBatchRequest] = []

    def __call__(self, request, **kwargs):
        self.requests.append(pb.LogBatchRequest.FromString(request.SerializeToString()))
        stripped = pb.LogBatchRequest()
        stripped.CopyFrom(request)
        stripped.ClearField("metric_columns")
        self.real(stripped, **kwargs)
        return pb.LogBatchResponse()  # an old server's answer has no count


def test_against_a_server_that_ignores_columns_the_sdk_resends_messages(
    grpc_stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlgrid
    from mlgrid.entities import Metric

    client = mlgrid.MlflowClient(grpc_stack.tracking_uri)
    run_id = client.create_run(client.create_experiment("columns-old-server")).info.run_id
    old = _OldServer(client._transport.tracking.LogBatch)
    real_write = client._transport.call_tracking_write

    def write(name: str, request):
        return old(request) if name == "LogBatch" else real_write(name, request)

    monkeypatch.setattr(client._transport, "call_tracking_write", write)
    client.log_batch(run_id, metrics=[Metric("m", float(i), 1 + i, i) for i in range(40)])
    assert [r.HasField("metric_columns") for r in old.requests] == [True, False]
    monkeypatch.undo()
    assert len(client.get_metric_history(run_id, "m")) == 40


def test_grpc_errors_are_unchanged_by_columns(stub) -> None:
    columns = pb.MetricColumns(keys=["a"], values=[1.0], timestamps=[1], steps=[0])
    with pytest.raises(grpc.RpcError) as info:
        stub.LogBatch(pb.LogBatchRequest(run_id="f" * 32, metric_columns=columns))
    assert info.value.code() is grpc.StatusCode.NOT_FOUND
