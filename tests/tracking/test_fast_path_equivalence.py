"""Each kept PostgreSQL fast path returns what the plain path returns, on generated data shapes.

The same generated writes go to a store with its fast paths and to one without them; history,
each key's latest point and metric searches must then agree exactly."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid_services.tracking.domain import TrackingDomain

from .helpers import new_experiment

KEYS = ("m", "n")
values = st.one_of(
    st.sampled_from([0.0, 0.5, 1.0, -1.0, math.nan, 0.75]),
    st.floats(allow_nan=True, allow_infinity=False, width=64),
)
points = st.builds(
    tracking_pb2.Metric,
    key=st.sampled_from(KEYS),
    value=values,
    timestamp=st.integers(0, 3),
    step=st.integers(-2, 5),
)


@st.composite
def one_key_batches(draw: st.DrawFn) -> tuple[tracking_pb2.Metric, ...]:
    """The shape the one-key statement takes: one key, distinct steps in any order, no NaN."""
    key = draw(st.sampled_from(KEYS))
    steps = draw(st.lists(st.integers(-2, 9), min_size=2, max_size=8, unique=True))
    return tuple(
        tracking_pb2.Metric(
            key=key,
            value=draw(st.floats(-2, 2, allow_nan=False)),
            timestamp=draw(st.integers(0, 3)),
            step=step,
        )
        for step in steps
    )


#: A run's writes: each item a log_metric (one point, a list) or a log_batch (a tuple).
writes = st.lists(
    st.one_of(
        points.map(lambda p: [p]),
        st.lists(points, min_size=1, max_size=8).map(tuple),
        one_key_batches(),
    ),
    min_size=1,
    max_size=5,
)
FILTERS = ("metrics.m > 0.5", "metrics.m <= 0.5", "metrics.n != 0", "metrics.m = 0.75")


def _apply(domain: TrackingDomain, experiment_id: str, run_writes: list) -> str:
    run_id = domain.create_run(experiment_id, "u", 0, [], "").info.run_id
    for item in run_writes:
        if isinstance(item, list):
            domain.log_metric(run_id, item[0])
        else:
            domain.log_batch(run_id, list(item), [], [])
    return run_id


def _observed(domain: TrackingDomain, experiment_id: str, run_id: str) -> dict:
    def point(m: tracking_pb2.Metric) -> tuple:
        return (m.step, m.timestamp, "nan" if math.isnan(m.value) else m.value)

    history = {
        key: sorted((point(m) for m in domain.get_metric_history(run_id, key, 0, "")[0]), key=repr)
        for key in KEYS
    }
    latest = {m.key: point(m) for m in domain.get_run(run_id).data.metrics}
    matches = {
        f: [r.info.run_id for r in domain.search_runs([experiment_id], f, 1, 10, [], "")[0]]
        == [run_id]
        for f in FILTERS
    }
    return {"history": history, "latest": latest, "matches": matches}


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(run_writes=writes)
def test_metric_writes_agree_with_the_plain_path(
    fast_and_plain: tuple[TrackingDomain, TrackingDomain], run_writes: list
) -> None:
    fast, plain = fast_and_plain
    observed = []
    for domain in (fast, plain):
        experiment_id = new_experiment(domain)
        run_id = _apply(domain, experiment_id, run_writes)
        observed.append(_observed(domain, experiment_id, run_id))
    assert observed[0] == observed[1]


param_batches = st.lists(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["1", "2"])),
        min_size=1,
        max_size=3,
        unique_by=lambda kv: kv[0],
    ),
    min_size=1,
    max_size=4,
)


def _log_params(domain: TrackingDomain, run_id: str, batches: list) -> list[str]:
    """Logs each batch (one pair: log_param); what each call answered."""
    outcomes = []
    for batch in batches:
        try:
            if len(batch) == 1:
                domain.log_param(run_id, *batch[0])
            else:
                params = [tracking_pb2.Param(key=k, value=v) for k, v in batch]
                domain.log_batch(run_id, [], params, [])
            outcomes.append("ok")
        except Exception as exc:
            outcomes.append(f"{type(exc).__name__}: {exc}".replace(run_id, "<run>"))
    return outcomes


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=param_batches, tags=st.dictionaries(st.sampled_from(["t", "u"]), st.just("v")))
def test_params_and_created_runs_agree_with_the_plain_path(
    fast_and_plain: tuple[TrackingDomain, TrackingDomain], batches: list, tags: dict
) -> None:
    observed = []
    for domain in fast_and_plain:
        experiment_id = new_experiment(domain)
        run = domain.create_run(
            experiment_id, "u", 7, [common_pb2.Tag(key=k, value=v) for k, v in tags.items()], "r"
        )
        outcomes = _log_params(domain, run.info.run_id, batches)
        got = domain.get_run(run.info.run_id)
        found = domain.search_runs([experiment_id], "params.a = '1'", 1, 10, [], "")[0]
        observed.append(
            (
                outcomes,
                sorted((p.key, p.value) for p in got.data.params),
                sorted((t.key, t.value) for t in got.data.tags),
                sorted((t.key, t.value) for t in run.data.tags),
                run.info.artifact_uri.rsplit("/", 3)[-2:] == [run.info.run_id, "artifacts"],
                len(found),
            )
        )
    assert observed[0] == observed[1]
