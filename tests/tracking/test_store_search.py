"""search_runs and search_experiments against the real stores."""

from __future__ import annotations

import base64
import json
import math

import pytest

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import InvalidParameterValue
from mlgrid_services.tracking.domain import TrackingDomain

from .helpers import metric, new_experiment, new_run, unique_name

ACTIVE, DELETED, ALL = 1, 2, 3


@pytest.fixture
def population(domain: TrackingDomain) -> tuple[str, dict[str, str]]:
    """Five runs with metrics/params/tags; returns the experiment id and run ids by name."""
    experiment_id = new_experiment(domain)
    specs = {
        "r1": (0.9, "0.01", "a", 100),
        "r2": (0.6, "0.1", "b", 200),
        "r3": (0.4, "0.01", "a", 300),
        "r4": (None, "0.01", "c", 400),
        "r5": (0.75, None, "b", 500),
    }
    ids = {}
    for name, (acc, lr, team, start) in specs.items():
        run = domain.create_run(experiment_id, "alice" if team == "a" else "bob", start, [], name)
        run_id = run.info.run_id
        ids[name] = run_id
        metrics = [metric("acc", acc, 1, 1)] if acc is not None else []
        params = [tracking_pb2.Param(key="lr", value=lr)] if lr else []
        domain.log_batch(run_id, metrics, params, [common_pb2.Tag(key="team", value=team)])
    return experiment_id, ids


def names(
    domain: TrackingDomain, experiment_id: str, text: str, order=(), view=ACTIVE
) -> list[str]:
    runs, _ = domain.search_runs([experiment_id], text, view, 0, list(order), "")
    return [r.info.run_name for r in runs]


def test_default_order_is_start_time_desc(domain: TrackingDomain, population) -> None:
    experiment_id, _ = population
    assert names(domain, experiment_id, "") == ["r5", "r4", "r3", "r2", "r1"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.acc > 0.5", {"r1", "r2", "r5"}),
        ("metrics.acc > 0.5 and params.lr = '0.01'", {"r1"}),
        ("metrics.acc > 0.5 or params.lr = '0.01'", {"r1", "r2", "r3", "r4", "r5"}),
        ("tags.team = 'b' and (metrics.acc < 0.7 or metrics.acc > 0.8)", {"r2"}),
        ("(tags.team = 'a' or tags.team = 'c') and params.lr = '0.01'", {"r1", "r3", "r4"}),
        ("tags.team = 'a' or tags.team = 'c' and params.lr = '0.1'", {"r1", "r3"}),
        ("params.lr IS NULL", {"r5"}),
        ("params.lr IS NOT NULL and metrics.acc <= 0.4", {"r3"}),
        ("params.lr != '0.01'", {"r2"}),
        ("params.lr LIKE '0.0%'", {"r1", "r3", "r4"}),
        ("tags.team LIKE 'A'", set()),
        ("tags.team ILIKE 'A'", {"r1", "r3"}),
        ("attributes.user_id = 'alice'", {"r1", "r3"}),
        ("attributes.run_name LIKE 'r%' and attributes.start_time >= 300", {"r3", "r4", "r5"}),
        ("created < 200", {"r1"}),
        ("attributes.status = 'RUNNING' and metrics.acc = 0.75", {"r5"}),
        ("metrics.acc != 0.9", {"r2", "r3", "r5"}),
        ("metrics.missing > 0", set()),
    ],
)
def test_filters(domain: TrackingDomain, population, text: str, expected: set[str]) -> None:
    experiment_id, _ = population
    assert set(names(domain, experiment_id, text)) == expected


def test_run_id_in_and_not_in(domain: TrackingDomain, population) -> None:
    experiment_id, ids = population
    listed = f"('{ids['r1']}', '{ids['r2']}')"
    assert set(names(domain, experiment_id, f"attributes.run_id IN {listed}")) == {"r1", "r2"}
    assert set(names(domain, experiment_id, f"run_id NOT IN {listed}")) == {"r3", "r4", "r5"}


def test_order_by_metric_desc_puts_missing_last(domain: TrackingDomain, population) -> None:
    experiment_id, _ = population
    ordered = names(domain, experiment_id, "", ["metrics.acc DESC"])
    assert ordered == ["r1", "r5", "r2", "r3", "r4"]
    ordered = names(domain, experiment_id, "", ["metrics.acc ASC"])
    assert ordered == ["r3", "r2", "r5", "r1", "r4"]


def test_order_by_several_clauses(domain: TrackingDomain, population) -> None:
    experiment_id, _ = population
    ordered = names(domain, experiment_id, "", ["tags.team", "attributes.start_time DESC"])
    assert ordered == ["r3", "r1", "r5", "r2", "r4"]
    ordered = names(domain, experiment_id, "", ["params.lr DESC", "run_name"])
    assert ordered == ["r2", "r1", "r3", "r4", "r5"]


def test_search_with_filter_and_order_like_the_benchmark(
    domain: TrackingDomain, population
) -> None:
    experiment_id, _ = population
    text = "metrics.acc > 0.3 and params.lr = '0.01'"
    assert names(domain, experiment_id, text, ["metrics.acc DESC"]) == ["r1", "r3"]


def test_search_returns_params_tags_and_latest_metrics(domain: TrackingDomain, population) -> None:
    experiment_id, _ = population
    runs, _ = domain.search_runs([experiment_id], "attributes.run_name = 'r1'", 1, 0, [], "")
    (run,) = runs
    assert {p.key: p.value for p in run.data.params} == {"lr": "0.01"}
    assert {t.key: t.value for t in run.data.tags}["team"] == "a"
    assert [(m.key, m.value) for m in run.data.metrics] == [("acc", 0.9)]


def test_paging_walks_every_run_once(domain: TrackingDomain, population) -> None:
    experiment_id, _ = population
    seen: list[str] = []
    token = ""
    while True:
        runs, token = domain.search_runs([experiment_id], "", 1, 2, [], token)
        seen += [r.info.run_name for r in runs]
        if not token:
            break
    assert seen == ["r5", "r4", "r3", "r2", "r1"]


@pytest.mark.parametrize("direction", ["DESC", "ASC"])
@pytest.mark.parametrize("page_size", [1, 2, 3, 100])
def test_metric_order_pages_cross_from_numbers_to_nan_and_missing(
    domain: TrackingDomain, direction: str, page_size: int
) -> None:
    """Pages ordered by a metric are served from the runs that have a number for it while they
    fill the page, then by the general statement: every page, at every boundary, is the one the
    whole ordering gives (numbers, then NaN, then missing; ties by newest start first)."""
    experiment_id = new_experiment(domain)
    values = {"a": 0.5, "b": 0.9, "c": math.nan, "d": None, "e": 0.1, "f": 0.5, "g": None}
    for start, (name, value) in enumerate(values.items()):
        run_id = domain.create_run(experiment_id, "u", start + 1, [], name).info.run_id
        params = [tracking_pb2.Param(key="kind", value="x" if name != "e" else "y")]
        domain.log_batch(run_id, [metric("m", value)] if value is not None else [], params, [])
    for text, skip in (("", set()), ("params.kind = 'x'", {"e"})):
        numbers = sorted(
            (v, -start, n)
            for start, (n, v) in enumerate(values.items())
            if v is not None and not math.isnan(v) and n not in skip
        )
        if direction == "DESC":
            numbers = sorted(numbers, key=lambda item: (-item[0], item[1]))
        expected = [n for _, _, n in numbers] + ["c"] + ["g", "d"]
        seen: list[str] = []
        token = ""
        while True:
            runs, token = domain.search_runs(
                [experiment_id], text, 1, page_size, [f"metrics.m {direction}"], token
            )
            seen += [r.info.run_name for r in runs]
            if not token:
                break
        assert seen == expected


def test_tampered_page_token_is_invalid(domain: TrackingDomain, population) -> None:
    experiment_id, _ = population
    _, token = domain.search_runs([experiment_id], "", 1, 2, [], "")
    body = json.loads(base64.urlsafe_b64decode(token))
    body["offset"] = 1
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).decode()
    for bad in (forged, "garbage!", token[:-4]):
        with pytest.raises(InvalidParameterValue, match="page_token"):
            domain.search_runs([experiment_id], "", 1, 2, [], bad)


def test_view_types(domain: TrackingDomain, population) -> None:
    experiment_id, ids = population
    domain.delete_run(ids["r1"])
    assert "r1" not in names(domain, experiment_id, "")
    assert names(domain, experiment_id, "", view=DELETED) == ["r1"]
    assert len(names(domain, experiment_id, "", view=ALL)) == 5


def test_search_over_several_experiments(domain: TrackingDomain) -> None:
    first, second = new_experiment(domain), new_experiment(domain)
    new_run(domain, first, run_name="in-first")
    new_run(domain, second, run_name="in-second")
    runs, _ = domain.search_runs([first, second], "", 1, 0, [], "")
    assert {r.info.run_name for r in runs} == {"in-first", "in-second"}


def test_max_results_limits(domain: TrackingDomain) -> None:
    with pytest.raises(InvalidParameterValue, match="max_results"):
        domain.search_runs(["0"], "", 1, 50001, [], "")


def test_dataset_filters(domain: TrackingDomain) -> None:
    experiment_id = new_experiment(domain)
    with_data = new_run(domain, experiment_id, run_name="with").info.run_id
    new_run(domain, experiment_id, run_name="without")
    domain.log_inputs(
        with_data,
        [
            tracking_pb2.DatasetInput(
                dataset=tracking_pb2.Dataset(name="iris", digest="d1", source_type="local"),
                tags=[common_pb2.Tag(key="mlflow.data.context", value="train")],
            )
        ],
    )
    assert names(domain, experiment_id, "datasets.name = 'iris'") == ["with"]
    assert names(domain, experiment_id, "datasets.digest IN ('d1', 'd2')") == ["with"]
    assert names(domain, experiment_id, "datasets.context = 'train'") == ["with"]
    assert names(domain, experiment_id, "datasets.context = 'eval'") == []


# ------------------------------------------------------------------ experiments


def test_search_experiments_filter_order_and_paging(domain: TrackingDomain) -> None:
    prefix = unique_name("srch")
    ids = [new_experiment(domain, f"{prefix}-{i}", team="x" if i % 2 else "y") for i in range(5)]
    found, _ = domain.search_experiments(1, 0, f"name LIKE '{prefix}-%'", ["name DESC"], "")
    assert [e.experiment_id for e in found] == ids[::-1]
    found, _ = domain.search_experiments(1, 0, f"name LIKE '{prefix}%' and tags.team = 'x'", [], "")
    assert {e.experiment_id for e in found} == {ids[1], ids[3]}
    found, _ = domain.search_experiments(
        1, 0, f"experiment_id IN ('{ids[0]}', '{ids[4]}') or name = '{prefix}-2'", ["name"], ""
    )
    assert [e.experiment_id for e in found] == [ids[0], ids[2], ids[4]]
    pages, token = [], ""
    while True:
        page, token = domain.search_experiments(
            1, 2, f"name LIKE '{prefix}%'", ["creation_time ASC", "experiment_id"], token
        )
        pages.append([e.experiment_id for e in page])
        if not token:
            break
    assert [i for page in pages for i in page] == ids and len(pages) == 3


def test_search_experiments_view_type_and_times(domain: TrackingDomain) -> None:
    prefix = unique_name("view")
    keep = new_experiment(domain, f"{prefix}-keep")
    gone = new_experiment(domain, f"{prefix}-gone")
    domain.delete_experiment(gone)
    text = f"name LIKE '{prefix}%' and creation_time > 0 and last_update_time > 0"
    assert [e.experiment_id for e in domain.search_experiments(1, 0, text, [], "")[0]] == [keep]
    assert [e.experiment_id for e in domain.search_experiments(2, 0, text, [], "")[0]] == [gone]
    assert len(domain.search_experiments(3, 0, text, [], "")[0]) == 2
    found = domain.search_experiments(3, 0, f"name LIKE '{prefix}%' and tags.x IS NULL", [], "")
    assert len(found[0]) == 2


def test_a_page_of_runs_is_fetched_without_n_plus_1_queries(domain: TrackingDomain) -> None:
    from sqlalchemy import event

    experiment_id = new_experiment(domain)
    for i in range(20):
        run_id = new_run(domain, experiment_id).info.run_id
        domain.log_batch(
            run_id, [metric("acc", i / 20)], [tracking_pb2.Param(key="i", value=str(i))], []
        )
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    engine = domain.store.engine  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", count)
    try:
        runs, _ = domain.search_runs(
            [experiment_id],
            "metrics.acc >= 0.5 and params.i != '3'",
            1,
            0,
            ["metrics.acc DESC"],
            "",
        )
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert [r.data.metrics[0].value for r in runs] == [i / 20 for i in range(19, 9, -1)]
    assert all(len(r.data.params) == 1 and r.data.tags for r in runs)
    assert [s for s in statements if s != "BEGIN"] == statements[-1:]  # one query per page
