"""MLflow 3's logged models in the tracking domain and store, on SQLite and PostgreSQL."""

from __future__ import annotations

import math

import pytest

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2 as t
from mlgrid.api.tracking.v1 import tracking_service_pb2 as pb
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist
from mlgrid_services.tracking.domain import TrackingDomain

from .helpers import metric, new_experiment, new_run

READY = t.LOGGED_MODEL_STATUS_READY
PENDING = t.LOGGED_MODEL_STATUS_PENDING
FAILED = t.LOGGED_MODEL_STATUS_UPLOAD_FAILED


def tag(key: str, value: str) -> common_pb2.Tag:
    return common_pb2.Tag(key=key, value=value)


def new_model(
    domain: TrackingDomain,
    experiment_id: str,
    name: str = "",
    *,
    source_run_id: str = "",
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
) -> t.LoggedModel:
    return domain.create_logged_model(
        experiment_id,
        name,
        "classifier",
        source_run_id,
        [t.Param(key=k, value=v) for k, v in (params or {}).items()],
        [tag(k, v) for k, v in (tags or {}).items()],
    )


def linked(
    key: str, value: float, model_id: str, step: int = 0, dataset: str = "", digest: str = ""
) -> t.Metric:
    point = metric(key, value, timestamp=10 + step, step=step)
    point.model_id, point.dataset_name, point.dataset_digest = model_id, dataset, digest
    return point


def search(domain: TrackingDomain, experiment_id: str, flt: str = "", **kwargs) -> list[str]:
    models, _ = domain.search_logged_models(
        [experiment_id],
        flt,
        kwargs.get("datasets", []),
        kwargs.get("max_results", 0),
        kwargs.get("order_by", []),
        kwargs.get("page_token", ""),
    )
    return [m.info.name for m in models]


def test_create_gives_a_pending_model_under_the_experiment_root(domain: TrackingDomain) -> None:
    experiment_id = new_experiment(domain)
    run = new_run(domain, experiment_id)
    model = new_model(
        domain,
        experiment_id,
        "clf",
        source_run_id=run.info.run_id,
        params={"alpha": "0.1"},
        tags={"team": "a"},
    )
    info = model.info
    assert info.model_id.startswith("m-") and len(info.model_id) == 34
    assert info.status == PENDING and info.experiment_id == experiment_id
    assert info.artifact_uri.endswith(f"/{experiment_id}/models/{info.model_id}/artifacts")
    assert info.source_run_id == run.info.run_id and info.model_type == "classifier"
    assert info.creation_timestamp_ms == info.last_updated_timestamp_ms > 0
    assert [(p.key, p.value) for p in model.data.params] == [("alpha", "0.1")]
    assert [(x.key, x.value) for x in info.tags] == [("team", "a")]
    assert domain.get_logged_model(info.model_id, False) == model


def test_a_model_without_a_name_gets_a_generated_one(domain: TrackingDomain) -> None:
    name = new_model(domain, new_experiment(domain)).info.name
    assert name.count("-") == 2 and name.rsplit("-", 1)[1].isdigit()


@pytest.mark.parametrize("name", ["a/b", "a:b", "a.b", "50%", "it's", " "])
def test_names_with_characters_mlflow_refuses_are_rejected(
    domain: TrackingDomain, name: str
) -> None:
    with pytest.raises(InvalidParameterValue, match="logged model name"):
        new_model(domain, new_experiment(domain), name)


def test_create_needs_an_existing_active_experiment(domain: TrackingDomain) -> None:
    with pytest.raises(ResourceDoesNotExist, match="experiment"):
        new_model(domain, "987654321")
    experiment_id = new_experiment(domain)
    domain.delete_experiment(experiment_id)
    with pytest.raises(InvalidParameterValue, match="active"):
        new_model(domain, experiment_id)


def test_finalize_sets_status_and_last_update(domain: TrackingDomain) -> None:
    model = new_model(domain, new_experiment(domain))
    done = domain.finalize_logged_model(model.info.model_id, READY)
    assert done.info.status == READY
    assert done.info.last_updated_timestamp_ms >= model.info.last_updated_timestamp_ms
    failed = domain.finalize_logged_model(model.info.model_id, FAILED)
    assert failed.info.status == FAILED
    with pytest.raises(InvalidParameterValue, match="status"):
        domain.finalize_logged_model(model.info.model_id, 0)
    with pytest.raises(ResourceDoesNotExist, match="m-00000000000000000000000000000000"):
        domain.finalize_logged_model("m-" + "0" * 32, READY)


def test_delete_hides_the_model_unless_deleted_ones_are_asked_for(
    domain: TrackingDomain,
) -> None:
    experiment_id = new_experiment(domain)
    model = new_model(domain, experiment_id, "gone")
    domain.delete_logged_model(model.info.model_id)
    with pytest.raises(ResourceDoesNotExist, match="not found"):
        domain.get_logged_model(model.info.model_id, False)
    assert domain.get_logged_model(model.info.model_id, True).info.name == "gone"
    assert search(domain, experiment_id) == []
    with pytest.raises(ResourceDoesNotExist):
        domain.delete_logged_model("m-" + "1" * 32)
    with pytest.raises(InvalidParameterValue, match="model_id"):
        domain.get_logged_model("../etc", False)


def test_tags_are_last_writer_wins_and_deletable(domain: TrackingDomain) -> None:
    model_id = new_model(domain, new_experiment(domain), tags={"a": "1"}).info.model_id
    updated = domain.set_logged_model_tags(model_id, [tag("a", "2"), tag("b", "x"), tag("b", "y")])
    assert {x.key: x.value for x in updated.info.tags} == {"a": "2", "b": "y"}
    domain.delete_logged_model_tag(model_id, "a")
    got = domain.get_logged_model(model_id, False)
    assert {x.key: x.value for x in got.info.tags} == {"b": "y"}
    with pytest.raises(ResourceDoesNotExist, match="No tag with key 'a'"):
        domain.delete_logged_model_tag(model_id, "a")
    with pytest.raises(ResourceDoesNotExist):
        domain.set_logged_model_tags("m-" + "2" * 32, [tag("a", "1")])


def test_registrations_come_from_mlflows_model_versions_tag(domain: TrackingDomain) -> None:
    model_id = new_model(domain, new_experiment(domain)).info.model_id
    versions = '[{"name": "clf", "version": "1"}, {"name": "clf", "version": "2"}]'
    info = domain.set_logged_model_tags(model_id, [tag("mlflow.modelVersions", versions)]).info
    assert [(r.name, r.version) for r in info.registrations] == [("clf", "1"), ("clf", "2")]


def test_a_registration_written_as_number_and_as_text_is_listed_once(
    domain: TrackingDomain,
) -> None:
    # MLflow's server writes {"version": 1}; its register_model appends {"version": "1"}.
    model_id = new_model(domain, new_experiment(domain)).info.model_id
    versions = '[{"name": "clf", "version": 1}, {"name": "clf", "version": "1"}]'
    info = domain.set_logged_model_tags(model_id, [tag("mlflow.modelVersions", versions)]).info
    assert [(r.name, r.version) for r in info.registrations] == [("clf", "1")]


def test_params_are_write_once(domain: TrackingDomain) -> None:
    model_id = new_model(domain, new_experiment(domain), params={"a": "1"}).info.model_id
    domain.log_logged_model_params(
        model_id, [t.Param(key="a", value="1"), t.Param(key="b", value="2")]
    )
    with pytest.raises(InvalidParameterValue, match="key='a'"):
        domain.log_logged_model_params(
            model_id, [t.Param(key="c", value="3"), t.Param(key="a", value="changed")]
        )
    got = domain.get_logged_model(model_id, False)
    assert {p.key: p.value for p in got.data.params} == {"a": "1", "b": "2"}  # no "c"
    with pytest.raises(InvalidParameterValue, match="more than once"):
        domain.log_logged_model_params(
            model_id, [t.Param(key="d", value="1"), t.Param(key="d", value="2")]
        )


def test_metrics_logged_with_a_model_id_reach_both_run_and_model(domain: TrackingDomain) -> None:
    experiment_id = new_experiment(domain)
    run_id = new_run(domain, experiment_id).info.run_id
    model_id = new_model(domain, experiment_id).info.model_id
    domain.log_metric(run_id, linked("acc", 0.7, model_id, step=1, dataset="test", digest="d1"))
    domain.log_batch(
        run_id,
        [linked("acc", 0.8, model_id, step=2, dataset="test", digest="d1"), metric("loss", 0.1)],
        [],
        [],
    )
    domain.log_batch(
        run_id, [linked("acc", 0.8, model_id, step=2, dataset="test", digest="d1")], [], []
    )
    run = domain.get_run(run_id)
    assert {m.key: m.value for m in run.data.metrics} == {"acc": 0.8, "loss": 0.1}
    points = domain.get_logged_model(model_id, False).data.metrics
    assert [
        (m.key, m.step, m.value, m.run_id, m.dataset_name, m.dataset_digest) for m in points
    ] == [
        ("acc", 1, 0.7, run_id, "test", "d1"),
        ("acc", 2, 0.8, run_id, "test", "d1"),  # the same point twice is kept once
    ]


def test_a_metric_naming_an_unknown_model_writes_nothing(domain: TrackingDomain) -> None:
    run_id = new_run(domain).info.run_id
    with pytest.raises(ResourceDoesNotExist, match="Logged model"):
        domain.log_batch(run_id, [metric("x", 1.0), linked("x", 2.0, "m-" + "3" * 32)], [], [])
    assert domain.get_run(run_id).data.metrics == []


def test_nan_model_metrics_are_kept(domain: TrackingDomain) -> None:
    experiment_id = new_experiment(domain)
    run_id = new_run(domain, experiment_id).info.run_id
    model_id = new_model(domain, experiment_id).info.model_id
    domain.log_metric(run_id, linked("loss", math.nan, model_id))
    (point,) = domain.get_logged_model(model_id, False).data.metrics
    assert math.isnan(point.value)


def test_run_outputs_and_model_inputs_show_on_the_run(domain: TrackingDomain) -> None:
    experiment_id = new_experiment(domain)
    run_id = new_run(domain, experiment_id).info.run_id
    first = new_model(domain, experiment_id).info.model_id
    second = new_model(domain, experiment_id).info.model_id
    domain.log_outputs(run_id, [t.ModelOutput(model_id=first, step=1)])
    domain.log_outputs(
        run_id, [t.ModelOutput(model_id=second, step=5), t.ModelOutput(model_id=first, step=3)]
    )
    domain.log_inputs(run_id, [], [t.ModelInput(model_id=second)])
    run = domain.get_run(run_id)
    assert [(o.model_id, o.step) for o in run.outputs.model_outputs] == [(first, 3), (second, 5)]
    assert [i.model_id for i in run.inputs.model_inputs] == [second]
    with pytest.raises(ResourceDoesNotExist, match="Logged model"):
        domain.log_outputs(run_id, [t.ModelOutput(model_id="m-" + "4" * 32)])
    domain.delete_run(run_id)
    with pytest.raises(InvalidParameterValue, match="active"):
        domain.log_outputs(run_id, [t.ModelOutput(model_id=first)])


@pytest.fixture
def zoo(domain: TrackingDomain) -> str:
    """Three models: a (acc 0.9 on test, 0.5 on train), b (acc 0.7 on test), c (no metrics)."""
    experiment_id = new_experiment(domain)
    run_id = new_run(domain, experiment_id).info.run_id
    models = {}
    for name, alpha in (("a", "0.1"), ("b", "0.2"), ("c", "0.3")):
        models[name] = new_model(
            domain, experiment_id, name, params={"alpha": alpha}, tags={"kind": f"k-{name}"}
        ).info.model_id
    domain.log_batch(
        run_id,
        [
            linked("acc", 0.2, models["a"], step=0, dataset="test", digest="d1"),
            linked("acc", 0.9, models["a"], step=1, dataset="test", digest="d1"),
            linked("acc", 0.5, models["a"], step=2, dataset="train", digest="d2"),
            linked("acc", 0.7, models["b"], step=1, dataset="test", digest="d1"),
        ],
        [],
        [],
    )
    domain.finalize_logged_model(models["b"], READY)
    return experiment_id


def test_search_by_attributes_params_and_tags(domain: TrackingDomain, zoo: str) -> None:
    assert search(domain, zoo, "name = 'a'") == ["a"]
    assert sorted(search(domain, zoo, "name IN ('a', 'c')")) == ["a", "c"]
    assert search(domain, zoo, "status = 'READY'") == ["b"]
    assert sorted(search(domain, zoo, "attributes.status != 'READY'")) == ["a", "c"]
    assert search(domain, zoo, "params.alpha = '0.3'") == ["c"]
    assert sorted(search(domain, zoo, "tags.kind LIKE 'k-%' AND params.alpha != '0.1'")) == [
        "b",
        "c",
    ]
    assert sorted(search(domain, zoo, "name = 'a' OR (params.alpha = '0.2')")) == ["a", "b"]
    assert search(domain, zoo, "creation_timestamp > 0 AND model_type = 'classifier'") != []


def test_search_compares_the_latest_metric_value(domain: TrackingDomain, zoo: str) -> None:
    # a's latest acc (any dataset) is 0.5 at step 2; on "test" it is 0.9 at step 1.
    assert sorted(search(domain, zoo, "metrics.acc > 0.6")) == ["b"]
    test_only = [pb.LoggedModelDatasetFilter(dataset_name="test")]
    assert sorted(search(domain, zoo, "metrics.acc > 0.6", datasets=test_only)) == ["a", "b"]
    exact = [pb.LoggedModelDatasetFilter(dataset_name="test", dataset_digest="nope")]
    assert search(domain, zoo, "metrics.acc > 0", datasets=exact) == []
    # Datasets without a metric filter keep the models with a metric on them.
    train = [pb.LoggedModelDatasetFilter(dataset_name="train")]
    assert search(domain, zoo, "", datasets=train) == ["a"]


def test_search_orders_by_metric_with_missing_values_last(domain: TrackingDomain, zoo: str) -> None:
    by_test_acc = [
        pb.LoggedModelOrderBy(field_name="metrics.acc", ascending=False, dataset_name="test")
    ]
    assert search(domain, zoo, order_by=by_test_acc) == ["a", "b", "c"]
    ascending = [pb.LoggedModelOrderBy(field_name="metrics.acc")]
    assert search(domain, zoo, order_by=ascending) == ["a", "b", "c"]  # a: 0.5, b: 0.7
    by_name = [pb.LoggedModelOrderBy(field_name="name", ascending=False)]
    assert search(domain, zoo, order_by=by_name) == ["c", "b", "a"]
    assert search(domain, zoo) == ["c", "b", "a"]  # newest first


def test_search_pages_through_every_model_once(domain: TrackingDomain, zoo: str) -> None:
    seen, token = [], ""
    while True:
        models, token = domain.search_logged_models([zoo], "", [], 2, [], token)
        seen += [m.info.name for m in models]
        if not token:
            break
    assert seen == ["c", "b", "a"]


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        ("foo = 'x'", "unknown logged model attribute 'foo'"),
        ("status = 'DONE'", "unknown logged model status"),
        ("metrics.acc > 'high'", "compared with a number"),
        ("datasets.name = 'x'", "cannot filter logged models on dataset"),
        ("name >", "Invalid filter"),
    ],
)
def test_bad_filters_name_what_is_wrong(
    domain: TrackingDomain, zoo: str, flt: str, message: str
) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        search(domain, zoo, flt)


def test_bad_search_requests(domain: TrackingDomain, zoo: str) -> None:
    with pytest.raises(InvalidParameterValue, match="experiment_ids"):
        domain.search_logged_models([], "", [], 0, [], "")
    with pytest.raises(InvalidParameterValue, match="dataset_name"):
        search(domain, zoo, datasets=[pb.LoggedModelDatasetFilter(dataset_digest="d")])
    with pytest.raises(InvalidParameterValue, match="metrics"):
        search(domain, zoo, order_by=[pb.LoggedModelOrderBy(field_name="params.alpha")])
    with pytest.raises(InvalidParameterValue, match="page_token"):
        search(domain, zoo, page_token="garbage")
