"""Every limit: a clear InvalidParameterValue naming the field, and nothing written."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import InvalidParameterValue
from mlgrid_services.tracking.domain import TrackingDomain

from .helpers import metric, new_experiment, new_run, unique_name

P = tracking_pb2.Param
T = common_pb2.Tag
Action = Callable[[TrackingDomain, str, str], object]


def _batch(metrics: int = 0, params: int = 0, tags: int = 0) -> Action:
    return lambda d, run_id, _e: d.log_batch(
        run_id,
        [metric("m", float(i), 1, i) for i in range(metrics)],
        [P(key=f"p{i}", value="v") for i in range(params)],
        [T(key=f"t{i}", value="v") for i in range(tags)],
    )


CASES: list[tuple[str, Action, str]] = [
    ("param key too long", lambda d, r, e: d.log_param(r, "k" * 251, "v"), "param key"),
    ("param key bad char", lambda d, r, e: d.log_param(r, "a*b", "v"), "param key 'a*b'"),
    ("param key dotdot", lambda d, r, e: d.log_param(r, "a/../b", "v"), "normalized relative"),
    ("param key absolute", lambda d, r, e: d.log_param(r, "/etc", "v"), "param key '/etc'"),
    ("param key dot", lambda d, r, e: d.log_param(r, ".", "v"), "param key '.'"),
    ("param key empty", lambda d, r, e: d.log_param(r, "", "v"), "must not be empty"),
    ("param value", lambda d, r, e: d.log_param(r, "p", "x" * 6001), "value of param 'p'"),
    ("tag value", lambda d, r, e: d.set_tag(r, "t", "x" * 8001), "value of tag 't'"),
    ("tag key", lambda d, r, e: d.set_tag(r, "t!", "v"), "tag key 't!'"),
    ("metric key", lambda d, r, e: d.log_metric(r, metric("m?", 1.0)), "metric key 'm?'"),
    ("metric timestamp", lambda d, r, e: d.log_metric(r, metric("m", 1.0, -1)), "timestamp -1"),
    ("run name", lambda d, r, e: d.update_run(r, 0, None, "n" * 251), "run_name"),
    ("run name tag", lambda d, r, e: d.set_tag(r, "mlflow.runName", "n" * 251), "mlflow.runName"),
    ("run status", lambda d, r, e: d.update_run(r, 9, None, ""), "status 9"),
    ("run id", lambda d, r, e: d.log_param("not a run!", "p", "v"), "run_id 'not a run!'"),
    ("batch metrics", _batch(metrics=1001), "metrics has 1001 entries, at most 1000"),
    ("batch params", _batch(params=101), "params has 101 entries, at most 100"),
    ("batch tags", _batch(tags=101), "tags has 101 entries, at most 100"),
    ("batch total", _batch(metrics=950, params=50, tags=1), "1001 metrics, params and tags"),
    (
        "batch with one bad metric",
        lambda d, r, e: d.log_batch(r, [metric("ok", 1.0), metric("bad key?", 1.0)], [], []),
        "metric key 'bad key?'",
    ),
    (
        "batch with one bad param value",
        lambda d, r, e: d.log_batch(
            r, [metric("ok", 1.0)], [P(key="a", value="1"), P(key="b", value="x" * 6001)], []
        ),
        "value of param 'b'",
    ),
    (
        "batch with one bad tag",
        lambda d, r, e: d.log_batch(r, [metric("ok", 1.0)], [], [T(key="x", value="y" * 8001)]),
        "value of tag 'x'",
    ),
    (
        "ingest with one bad point",
        lambda d, r, e: d.ingest_metrics(r, [metric("ok", 1.0), metric("ok", 1.0, -5)]),
        "timestamp -5",
    ),
    (
        "experiment tag value",
        lambda d, r, e: d.set_experiment_tag(e, "k", "x" * 20001),
        "value of experiment tag 'k'",
    ),
    ("experiment id", lambda d, r, e: d.get_experiment("../1"), "experiment_id '../1'"),
    (
        "search max_results",
        lambda d, r, e: d.search_runs([e], "", 1, 50001, [], ""),
        "max_results 50001",
    ),
    (
        "search experiment ids",
        lambda d, r, e: d.search_runs(["a b"], "", 1, 0, [], ""),
        "experiment_ids 'a b'",
    ),
    (
        "bulk interval runs",
        lambda d, r, e: d.get_metric_history_bulk_interval([r] * 101, "m", None, None, 0),
        "101 given, at most 100",
    ),
    (
        "bulk interval points",
        lambda d, r, e: d.get_metric_history_bulk_interval([r], "m", None, None, 2501),
        "max_results 2501",
    ),
    (
        "bulk interval range",
        lambda d, r, e: d.get_metric_history_bulk_interval([r], "m", 5, 1, 0),
        "start_step 5 is greater than end_step 1",
    ),
    (
        "dataset digest",
        lambda d, r, e: d.log_inputs(
            r,
            [tracking_pb2.DatasetInput(dataset=tracking_pb2.Dataset(name="d", digest="x" * 37))],
        ),
        "dataset.digest",
    ),
]


@pytest.mark.parametrize(("case", "action", "named"), CASES, ids=[c[0] for c in CASES])
def test_limit_is_enforced_and_nothing_is_written(
    domain: TrackingDomain, case: str, action: Action, named: str
) -> None:
    experiment_id = new_experiment(domain)
    run = new_run(domain, experiment_id)
    run_id = run.info.run_id
    with pytest.raises(InvalidParameterValue) as info:
        action(domain, run_id, experiment_id)
    assert named in str(info.value), str(info.value)
    assert domain.get_run(run_id) == run  # no params, tags, metrics or inputs appeared
    assert domain.get_metric_history(run_id, "ok", 0, "")[0] == []
    assert list(domain.get_experiment(experiment_id).tags) == []


@pytest.mark.parametrize(
    ("name", "named"),
    [("", "experiment name ''"), ("n" * 501, "at most 500 characters")],
)
def test_experiment_name_limits(domain: TrackingDomain, name: str, named: str) -> None:
    with pytest.raises(InvalidParameterValue, match=named):
        domain.create_experiment(name, "", [])


def test_artifact_location_limit_creates_nothing(domain: TrackingDomain) -> None:
    name = unique_name()
    with pytest.raises(InvalidParameterValue, match="artifact_location"):
        domain.create_experiment(name, "s3://b/" + "x" * 2048, [])
    with pytest.raises(Exception, match="does not exist"):
        domain.get_experiment_by_name(name)


def test_experiment_tag_limit_on_create_creates_nothing(domain: TrackingDomain) -> None:
    name = unique_name()
    with pytest.raises(InvalidParameterValue, match="value of experiment tag 'k'"):
        domain.create_experiment(name, "", [T(key="k", value="x" * 20001)])
    with pytest.raises(Exception, match="does not exist"):
        domain.get_experiment_by_name(name)


def test_limits_at_the_boundary_are_accepted(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    domain.log_param(run_id, "k" * 250, "x" * 6000)
    domain.set_tag(run_id, "t", "x" * 8000)
    domain.log_batch(
        run_id,
        [metric("m", float(i), 1, i) for i in range(900)],
        [P(key=f"p{i}", value="v") for i in range(50)],
        [T(key=f"t{i}", value="v") for i in range(50)],
    )
    assert len(domain.get_run(run_id).data.params) == 51
