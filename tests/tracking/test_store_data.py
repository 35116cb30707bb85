"""Run data: params (write-once), metrics (append-only, latest), tags, log_batch, history, inputs."""

from __future__ import annotations

import math

import pytest

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist
from mlgrid_services.common.validation import MAX_DOUBLE
from mlgrid_services.tracking.domain import TrackingDomain
from mlgrid_services.tracking.store import schema
from mlgrid_services.tracking.store.series import metric_series
from mlgrid_services.tracking.store.sql_store import SqlTrackingStore

from .helpers import metric, metrics_of, new_run, params_of, tags_of


def test_param_is_write_once_same_value_is_a_no_op(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    domain.log_param(run_id, "lr", "0.01")
    domain.log_param(run_id, "lr", "0.01")
    with pytest.raises(InvalidParameterValue, match=r"lr.*0\.01.*0\.02"):
        domain.log_param(run_id, "lr", "0.02")
    assert params_of(domain.get_run(run_id)) == {"lr": "0.01"}


def test_latest_metric_is_greatest_step_timestamp_value_not_last_write(
    domain: TrackingDomain,
) -> None:
    run_id = new_run(domain).info.run_id
    domain.log_metric(run_id, metric("acc", 0.9, timestamp=10, step=5))
    domain.log_metric(run_id, metric("acc", 0.1, timestamp=20, step=1))  # older step
    assert metrics_of(domain.get_run(run_id))["acc"].value == 0.9
    domain.log_metric(run_id, metric("acc", 0.5, timestamp=11, step=5))  # same step, later
    assert metrics_of(domain.get_run(run_id))["acc"].value == 0.5
    domain.log_metric(run_id, metric("acc", 0.7, timestamp=11, step=5))  # tie: greater value
    latest = metrics_of(domain.get_run(run_id))["acc"]
    assert (latest.step, latest.timestamp, latest.value) == (5, 11, 0.7)


def test_metrics_are_append_only_history_is_ordered(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    for step, value in [(2, 0.2), (0, 0.0), (1, 0.1), (1, 0.15)]:
        domain.log_metric(
            run_id, metric("loss", value, timestamp=100 + int(value * 100), step=step)
        )
    history, token = domain.get_metric_history(run_id, "loss", 0, "")
    assert [(m.step, m.value) for m in history] == [(0, 0.0), (1, 0.1), (1, 0.15), (2, 0.2)]
    assert token == ""


def test_nan_is_kept_and_infinities_clamped(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    domain.log_metric(run_id, metric("n", math.nan))
    domain.log_metric(run_id, metric("p", math.inf))
    domain.log_metric(run_id, metric("m", -math.inf))
    latest = metrics_of(domain.get_run(run_id))
    assert math.isnan(latest["n"].value)
    assert latest["p"].value == MAX_DOUBLE and latest["m"].value == -MAX_DOUBLE
    history, _ = domain.get_metric_history(run_id, "n", 0, "")
    assert len(history) == 1 and math.isnan(history[0].value)


def test_tags_last_writer_wins_and_delete(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    domain.set_tag(run_id, "t", "1")
    domain.set_tag(run_id, "t", "2")
    assert tags_of(domain.get_run(run_id))["t"] == "2"
    domain.delete_tag(run_id, "t")
    assert "t" not in tags_of(domain.get_run(run_id))
    with pytest.raises(ResourceDoesNotExist, match="'t'"):
        domain.delete_tag(run_id, "t")


def test_log_batch_writes_everything(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    domain.log_batch(
        run_id,
        [metric("m", float(i), timestamp=i, step=i) for i in range(10)],
        [tracking_pb2.Param(key="a", value="1"), tracking_pb2.Param(key="b", value="2")],
        [common_pb2.Tag(key="t", value="x"), common_pb2.Tag(key="t", value="y")],
    )
    run = domain.get_run(run_id)
    assert params_of(run) == {"a": "1", "b": "2"}
    assert tags_of(run)["t"] == "y"
    assert metrics_of(run)["m"].step == 9
    assert len(domain.get_metric_history(run_id, "m", 0, "")[0]) == 10


def test_log_batch_is_atomic_a_conflicting_param_writes_nothing(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    domain.log_param(run_id, "fixed", "1")
    with pytest.raises(InvalidParameterValue, match="fixed"):
        domain.log_batch(
            run_id,
            [metric("m", 1.0)],
            [tracking_pb2.Param(key="new", value="x"), tracking_pb2.Param(key="fixed", value="2")],
            [common_pb2.Tag(key="t", value="v")],
        )
    run = domain.get_run(run_id)
    assert params_of(run) == {"fixed": "1"}
    assert "t" not in tags_of(run)
    assert "m" not in metrics_of(run)
    assert domain.get_metric_history(run_id, "m", 0, "")[0] == []


def test_log_batch_rejects_duplicate_param_keys(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    params = [tracking_pb2.Param(key="a", value="1"), tracking_pb2.Param(key="a", value="1")]
    with pytest.raises(InvalidParameterValue, match="'a' appears more than once"):
        domain.log_batch(run_id, [], params, [])
    assert params_of(domain.get_run(run_id)) == {}


def test_log_batch_with_same_param_value_again_succeeds(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    params = [tracking_pb2.Param(key="a", value="1")]
    domain.log_batch(run_id, [], params, [])
    domain.log_batch(run_id, [], params, [])
    assert params_of(domain.get_run(run_id)) == {"a": "1"}


def test_log_batch_keeps_the_greatest_point_as_latest(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    domain.log_batch(
        run_id, [metric("m", 5.0, 1, 3), metric("m", 1.0, 9, 2), metric("m", 2.0, 1, 3)], [], []
    )
    latest = metrics_of(domain.get_run(run_id))["m"]
    assert (latest.step, latest.value) == (3, 5.0)
    domain.log_batch(run_id, [metric("m", 0.0, 1, 1)], [], [])
    assert metrics_of(domain.get_run(run_id))["m"].value == 5.0


def test_metric_history_paging(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    domain.log_batch(run_id, [metric("m", float(i), i, i) for i in range(25)], [], [])
    seen: list[int] = []
    token = ""
    while True:
        page, token = domain.get_metric_history(run_id, "m", 10, token)
        seen += [m.step for m in page]
        if not token:
            break
    assert seen == list(range(25))


def test_metric_history_of_unknown_run_is_not_found(domain: TrackingDomain) -> None:
    with pytest.raises(ResourceDoesNotExist):
        domain.get_metric_history("a" * 32, "m", 0, "")
    with pytest.raises(ResourceDoesNotExist):
        list(domain.iter_metric_history("a" * 32, "m"))


def test_stream_history_yields_chunks_in_order(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    for chunk in range(3):
        domain.ingest_metrics(
            run_id, [metric("s", float(i), i, i) for i in range(chunk * 1000, chunk * 1000 + 1000)]
        )
    domain.log_metric(run_id, metric("s", math.nan, 5000, 5000))
    points = [p for chunk in domain.store.iter_metric_history(run_id, "s", 700) for p in chunk]
    assert [p[0] for p in points] == [*range(3000), 5000]
    assert math.isnan(points[-1][2])
    assert max(len(c) for c in domain.store.iter_metric_history(run_id, "s", 700)) == 700


def test_bulk_interval_samples_and_keeps_first_and_last_step(domain: TrackingDomain) -> None:
    a = new_run(domain).info.run_id
    b = new_run(domain).info.run_id
    domain.ingest_metrics(a, [metric("m", float(i), i, i) for i in range(100)])
    domain.ingest_metrics(b, [metric("m", float(i), i, i) for i in range(0, 100, 10)])
    sampled = domain.get_metric_history_bulk_interval([a, b], "m", 10, 90, 5)
    by_run: dict[str, list[int]] = {}
    for item in sampled:
        by_run.setdefault(item.run_id, []).append(item.metric.step)
    assert by_run[a][0] == 10 and by_run[a][-1] == 90 and len(by_run[a]) == 5
    assert by_run[b] == [10, 30, 50, 70, 90]
    assert list(by_run) == [a, b]


def test_bulk_interval_one_point_per_step_the_latest(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    domain.log_batch(run_id, [metric("m", 1.0, 5, 0), metric("m", 2.0, 9, 0)], [], [])
    sampled = domain.get_metric_history_bulk_interval([run_id], "m", None, None, 0)
    assert [(s.metric.step, s.metric.value) for s in sampled] == [(0, 2.0)]


def test_log_inputs_dedups_datasets_and_shows_them_on_the_run(domain: TrackingDomain) -> None:
    run = new_run(domain)
    other = new_run(domain, run.info.experiment_id)
    dataset = tracking_pb2.Dataset(
        name="iris", digest="abc123", source_type="local", source='{"uri": "/d"}'
    )
    item = tracking_pb2.DatasetInput(
        dataset=dataset, tags=[common_pb2.Tag(key="mlflow.data.context", value="train")]
    )
    domain.log_inputs(run.info.run_id, [item])
    domain.log_inputs(run.info.run_id, [item])
    domain.log_inputs(other.info.run_id, [item])
    got = domain.get_run(run.info.run_id).inputs.dataset_inputs
    assert len(got) == 1
    assert got[0].dataset == dataset
    assert [(t.key, t.value) for t in got[0].tags] == [("mlflow.data.context", "train")]
    with domain.store.engine.connect() as conn:  # type: ignore[attr-defined]
        from sqlalchemy import text

        count = conn.execute(
            text("SELECT count(*) FROM datasets WHERE experiment_id = :e AND name = 'iris'"),
            {"e": int(run.info.experiment_id)},
        ).scalar()
    assert count == 1


def test_a_colliding_series_number_never_mixes_histories(
    domain: TrackingDomain, store: SqlTrackingStore
) -> None:
    """Two (run, key) pairs with the same series number share an index range only: reads also
    match the run and the key."""
    run_id = new_run(domain).info.run_id
    other = new_run(domain).info.run_id
    domain.log_batch(run_id, [metric("m", 1.0, 1, 1)], [], [])
    with store.engine.begin() as conn:  # a point of another run and key, forged onto m's series
        conn.execute(
            schema.metrics.insert().values(
                run_uuid=other,
                key="z",
                step=0,
                timestamp=1,
                value=9.0,
                is_nan=False,
                series=metric_series(run_id, "m"),
            )
        )
    points, _ = domain.get_metric_history(run_id, "m", 0, "")
    assert [(p.step, p.value) for p in points] == [(1, 1.0)]
    assert [list(chunk) for chunk in domain.iter_metric_history(run_id, "m")] == [[(1, 1, 1.0)]]
    sampled = domain.get_metric_history_bulk_interval([run_id, other], "m", None, None, 10)
    assert [(s.run_id, s.metric.value) for s in sampled] == [(run_id, 1.0)]


def test_search_returns_each_runs_dataset_inputs_as_get_run_does(domain: TrackingDomain) -> None:
    """MLflow's search_runs carries run.inputs; only runs with inputs get any."""
    with_two = new_run(domain)
    experiment_id = with_two.info.experiment_id
    with_one = new_run(domain, experiment_id)
    without = new_run(domain, experiment_id)

    def item(name: str, context: str) -> tracking_pb2.DatasetInput:
        return tracking_pb2.DatasetInput(
            dataset=tracking_pb2.Dataset(
                name=name, digest=f"d-{name}", source_type="local", source="{}"
            ),
            tags=[common_pb2.Tag(key="mlflow.data.context", value=context)],
        )

    domain.log_inputs(with_two.info.run_id, [item("train-set", "train"), item("eval-set", "eval")])
    domain.log_inputs(with_one.info.run_id, [item("train-set", "tuning")])
    found, _ = domain.search_runs([experiment_id], "", 1, 100, [], "")
    by_id = {run.info.run_id: run for run in found}
    assert set(by_id) == {with_two.info.run_id, with_one.info.run_id, without.info.run_id}
    for run_id in by_id:
        assert by_id[run_id].inputs == domain.get_run(run_id).inputs
    two = by_id[with_two.info.run_id].inputs.dataset_inputs
    assert [(i.dataset.name, i.tags[0].value) for i in two] == [
        ("eval-set", "eval"),
        ("train-set", "train"),
    ]
    one = by_id[with_one.info.run_id].inputs.dataset_inputs
    assert [(i.dataset.name, i.tags[0].value) for i in one] == [("train-set", "tuning")]
    assert not by_id[without.info.run_id].inputs.dataset_inputs
