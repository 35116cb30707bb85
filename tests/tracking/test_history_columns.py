"""The columnar metric history (StreamMetricHistoryRequest.columnar) returns exactly the points
of the one-message-per-point path: same order, NaN and clamped infinities, same-step and
same-(step, timestamp) duplicates, across chunk boundaries. On every database, and through a
real gRPC server."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import grpc
import pytest

from mlgrid.api.tracking.v1 import tracking_pb2 as t
from mlgrid.api.tracking.v1 import tracking_service_pb2 as pb
from mlgrid.api.tracking.v1 import tracking_service_pb2_grpc as pb_grpc
from mlgrid.store.tracking_store import HistoryColumns
from mlgrid_services.common.config import ServiceConfig
from mlgrid_services.common.server import start_server
from mlgrid_services.tracking.app import create
from mlgrid_services.tracking.domain import TrackingDomain

from .helpers import metric, new_run, unique_name

Point = tuple[int, int, object]


def _comparable(step: int, timestamp: int, value: float) -> Point:
    return (step, timestamp, "NaN" if math.isnan(value) else value)


def _from_columns(chunks: Iterable[HistoryColumns]) -> list[Point]:
    return [
        _comparable(*point)
        for chunk in chunks
        for point in zip(chunk.steps, chunk.timestamps, chunk.values, strict=True)
    ]


def _tricky_points() -> list[t.Metric]:
    """Points whose order and boundaries are easy to get wrong, logged out of order."""
    points = [metric("h", float(step % 5), 1_000 + step, step) for step in range(40, 0, -1)]
    points += [
        metric("h", math.nan, 7, 3),  # NaN at the same (step, timestamp) as a stored 0.0 ...
        metric("h", 0.0, 7, 3),  # ... which it is stored beside
        metric("h", 2.5, 7, 3),
        metric("h", -1.0, 6, 3),  # same step, earlier timestamp
        metric("h", math.inf, 8, 3),  # clamped by the service
        metric("h", -math.inf, 8, 4),
        metric("h", math.nan, 9, 41),
        metric("h", 5.0, 0, -7),  # negative step first
        metric("h", 1e300, 2**62, 2**62),
    ]
    return points


def test_every_chunking_matches_the_row_path(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    domain.log_batch(run_id, _tricky_points(), [], [])
    rows = [_comparable(*p) for c in domain.store.iter_metric_history(run_id, "h", 1000) for p in c]
    paged, _ = domain.get_metric_history(run_id, "h", 0, "")
    assert rows == [_comparable(m.step, m.timestamp, m.value) for m in paged]
    assert len(rows) == 49 and rows[0] == (-7, 0, 5.0) and rows[-1] == (2**62, 2**62, 1e300)
    assert rows.count((3, 7, "NaN")) == 1 and (3, 8, 1.7976931348623157e308) in rows
    for chunk_size in range(1, 12):
        chunks = list(domain.store.iter_metric_history_columns(run_id, "h", chunk_size))
        # No chunk empty or above the size (PostgreSQL ends a chunk at each step stripe too).
        assert all(0 < len(c.steps) <= chunk_size for c in chunks)
        assert all(len(c.timestamps) == len(c.values) == len(c.steps) for c in chunks)
        assert _from_columns(chunks) == rows, f"chunk size {chunk_size}"
    assert _from_columns(domain.iter_metric_history_columns(run_id, "h")) == rows


def test_unknown_key_is_empty_and_unknown_run_is_refused(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    assert list(domain.iter_metric_history_columns(run_id, "nothing")) == []
    with pytest.raises(Exception, match="not found"):
        list(domain.iter_metric_history_columns("0" * 32, "h"))


# -- through a real gRPC server -------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stub(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[pb_grpc.TrackingServiceStub]:
    if request.param == "sqlite":
        uri = f"sqlite:///{tmp_path_factory.mktemp('svc') / 'mlgrid.db'}"
    else:
        uri = request.getfixturevalue("postgres_url")
    root = Path(tmp_path_factory.mktemp("art")).as_uri()
    app = create(ServiceConfig(backend_store_uri=uri, default_artifact_root=root))
    running = start_server(app.services, port=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    yield pb_grpc.TrackingServiceStub(channel)
    channel.close()
    running.stop(0)
    app.close()


def test_columnar_stream_equals_the_per_point_stream(stub: pb_grpc.TrackingServiceStub) -> None:
    experiment_id = stub.CreateExperiment(
        pb.CreateExperimentRequest(name=unique_name())
    ).experiment_id
    run_id = stub.CreateRun(pb.CreateRunRequest(experiment_id=experiment_id)).run.info.run_id
    total = 140_000  # three columnar chunks (65,536 points each at most)
    points = [t.Metric(key="h", value=i * 0.25, timestamp=i, step=i // 2) for i in range(total)]
    points[65_535].value = math.nan  # the last point of the first chunk
    points[65_536].value = math.inf
    stub.IngestMetrics(
        iter(
            pb.IngestMetricsRequest(run_id=run_id, metrics=points[i : i + 10_000])
            for i in range(0, total, 10_000)
        )
    )
    old = stub.StreamMetricHistory(pb.StreamMetricHistoryRequest(run_id=run_id, metric_key="h"))
    per_point = [_comparable(m.step, m.timestamp, m.value) for c in old for m in c.metrics]
    new = list(
        stub.StreamMetricHistory(
            pb.StreamMetricHistoryRequest(run_id=run_id, metric_key="h", columnar=True)
        )
    )
    assert [len(c.columns.steps) for c in new] == [65_536, 65_536, 8_928]
    assert all(not c.metrics for c in new)
    assert _from_columns(c.columns for c in new) == per_point  # type: ignore[misc]
    assert len(per_point) == total and per_point[65_535][2] == "NaN"
    assert per_point[65_536][2] == 1.7976931348623157e308
