"""The promises of :class:`~mlgrid.store.tracking_store.AbstractTrackingStore`, as tests.

Plugin authors run them over their own store::

    import pytest
    from mlgrid.testing import TrackingStoreContract

    class TestMyStore(TrackingStoreContract):
        @pytest.fixture
        def tracking_store(self):
            store = MyStore("my-scheme://...")
            yield store
            store.close()

The store may be shared between tests (each test creates its own experiments with unique names)
and must contain the Default experiment "0". mlgrid runs the same class over its SQL store on
SQLite and PostgreSQL and over :class:`~mlgrid.testing.MemoryTrackingStore`. Inputs are what the
service's domain layer would hand a store: already validated, defaults filled in.
"""

from __future__ import annotations

import math
import re
import uuid

import pytest

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from mlgrid.store.search_filter import RUN_ATTRIBUTES
from mlgrid.store.tracking_store import AbstractTrackingStore

__all__ = ["TrackingStoreContract"]

ACTIVE_ONLY, DELETED_ONLY, ALL = (
    common_pb2.VIEW_TYPE_ACTIVE_ONLY,
    common_pb2.VIEW_TYPE_DELETED_ONLY,
    common_pb2.VIEW_TYPE_ALL,
)
RUNNING, FINISHED = tracking_pb2.RUN_STATUS_RUNNING, tracking_pb2.RUN_STATUS_FINISHED


def _tag(key: str, value: str) -> common_pb2.Tag:
    return common_pb2.Tag(key=key, value=value)


def _metric(key: str, value: float, timestamp: int = 1_000, step: int = 0) -> tracking_pb2.Metric:
    return tracking_pb2.Metric(key=key, value=value, timestamp=timestamp, step=step)


def _param(key: str, value: str) -> tracking_pb2.Param:
    return tracking_pb2.Param(key=key, value=value)


def _unique(prefix: str = "contract") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class TrackingStoreContract:
    """Tests every tracking store must pass. Provide a ``tracking_store`` fixture."""

    @pytest.fixture
    def tracking_store(self) -> AbstractTrackingStore:
        raise NotImplementedError("provide a tracking_store fixture returning your store")

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def new_experiment(store: AbstractTrackingStore, **tags: str) -> str:
        return store.create_experiment(_unique(), None, [_tag(k, v) for k, v in tags.items()])

    @staticmethod
    def new_run(
        store: AbstractTrackingStore, experiment_id: str, name: str = "run", start: int = 1_000
    ) -> str:
        run = store.create_run(experiment_id, "tester", start, name, [_tag("mlflow.runName", name)])
        return run.info.run_id

    @staticmethod
    def names(runs: list[tracking_pb2.Run]) -> list[str]:
        return [r.info.run_name for r in runs]

    # -------------------------------------------------------------- experiments

    def test_an_experiment_is_created_active_with_its_tags_and_a_default_location(
        self, tracking_store: AbstractTrackingStore
    ) -> None:
        name = _unique()
        experiment_id = tracking_store.create_experiment(name, None, [_tag("team", "vision")])
        got = tracking_store.get_experiment(experiment_id)
        assert (got.name, got.lifecycle_stage) == (name, "active")
        assert got.artifact_location.endswith(f"/{experiment_id}")
        assert [(t.key, t.value) for t in got.tags] == [("team", "vision")]
        assert got.creation_time > 0 and got.last_update_time >= got.creation_time
        by_name = tracking_store.get_experiment_by_name(name)
        assert by_name is not None and by_name.experiment_id == experiment_id
        assert tracking_store.get_experiment_by_name(_unique()) is None

    def test_the_default_experiment_exists_and_cannot_be_deleted(
        self, tracking_store: AbstractTrackingStore
    ) -> None:
        assert tracking_store.get_experiment("0").lifecycle_stage == "active"
        with pytest.raises(InvalidParameterValue):
            tracking_store.delete_experiment("0")

    def test_unknown_experiments_do_not_exist(self, tracking_store: AbstractTrackingStore) -> None:
        with pytest.raises(ResourceDoesNotExist):
            tracking_store.get_experiment("987654321")

    def test_names_are_unique_also_against_deleted_experiments(
        self, tracking_store: AbstractTrackingStore
    ) -> None:
        name = _unique()
        experiment_id = tracking_store.create_experiment(name, None, [])
        tracking_store.delete_experiment(experiment_id)
        with pytest.raises(ResourceAlreadyExists):
            tracking_store.create_experiment(name, None, [])
        other = self.new_experiment(tracking_store)
        with pytest.raises(ResourceAlreadyExists):
            tracking_store.rename_experiment(other, name)

    def test_a_deleted_experiment_cannot_be_renamed_or_tagged(
        self, tracking_store: AbstractTrackingStore
    ) -> None:
        experiment_id = self.new_experiment(tracking_store)
        tracking_store.delete_experiment(experiment_id)
        with pytest.raises(InvalidParameterValue):
            tracking_store.rename_experiment(experiment_id, _unique())
        with pytest.raises(InvalidParameterValue):
            tracking_store.set_experiment_tag(experiment_id, _tag("k", "v"))

    def test_deleting_an_experiment_deletes_its_runs_and_restoring_brings_back_only_those(
        self, tracking_store: AbstractTrackingStore
    ) -> None:
        experiment_id = self.new_experiment(tracking_store)
        kept = self.new_run(tracking_store, experiment_id, "kept")
        alone = self.new_run(tracking_store, experiment_id, "deleted-alone")
        tracking_store.delete_run(alone)
        tracking_store.delete_experiment(experiment_id)
        assert tracking_store.get_run(kept).info.lifecycle_stage == "deleted"
        with pytest.raises(InvalidParameterValue):
            tracking_store.restore_run(kept)  # its experiment is deleted
        tracking_store.restore_experiment(experiment_id)
        assert tracking_store.get_experiment(experiment_id).lifecycle_stage == "active"
        assert tracking_store.get_run(kept).info.lifecycle_stage == "active"
        assert tracking_store.get_run(alone).info.lifecycle_stage == "deleted"
        with pytest.raises(InvalidParameterValue):
            tracking_store.restore_experiment(experiment_id)  # already active

    def test_experiment_tags_overwrite_and_a_missing_tag_cannot_be_deleted(
        self, tracking_store: AbstractTrackingStore
    ) -> None:
        experiment_id = self.new_experiment(tracking_store, stage="dev")
        tracking_store.set_experiment_tag(experiment_id, _tag("stage", "prod"))
        tracking_store.set_experiment_tag(experiment_id, _tag("owner", "ada"))
        tags = {t.key: t.value for t in tracking_store.get_experiment(experiment_id).tags}
        assert tags == {"stage": "prod", "owner": "ada"}
        tracking_store.delete_experiment_tag(experiment_id, "owner")
        with pytest.raises(ResourceDoesNotExist):
            tracking_store.delete_experiment_tag(experiment_id, "owner")
        tags = {t.key: t.value for t in tracking_store.get_experiment(experiment_id).tags}
        assert tags == {"stage": "prod"}

    def test_search_experiments_filters_views_orders_and_pages(
        self, tracking_store: AbstractTrackingStore
    ) -> None:
        prefix = _unique("search")
        ids = [
            tracking_store.create_experiment(f"{prefix}-{i}", None, [_tag("i", str(i))])
            for i in range(5)
        ]
        tracking_store.delete_experiment(ids[4])

        def search(
            view: int = ACTIVE_ONLY, more: str = "", order_by: tuple[str, ...] = ("name ASC",)
        ) -> list[str]:
            flt = f"name LIKE '{prefix}-%'" + more
            found, _ = tracking_store.search_experiments(view, 100, flt, order_by, "")
            return [e.name.removeprefix(prefix + "-") for e in found]

        assert search() == ["0", "1", "2", "3"]
        assert search(DELETED_ONLY) == ["4"]
        assert search(ALL, order_by=("name DESC",)) == ["4", "3", "2", "1", "0"]
        assert search(more=" AND tags.i = '2'") == ["2"]
        first, token = tracking_store.search_experiments(
            ALL, 2, f"name LIKE '{prefix}-%'", ["name ASC"], ""
        )
        assert len(first) == 2 and token
        seen = [e.experiment_id for e in first]
        while token:
            page, token = tracking_store.search_experiments(
                ALL, 2, f"name LIKE '{prefix}-%'", ["name ASC"], token
            )
            seen += [e.experiment_id for e in page]
        assert seen == ids

    # --------------------------------------------------------------------- runs

    def test_a_run_is_created_running_under_its_experiments_location(
        self, tracking_store: AbstractTrackingStore
    ) -> None:
        experiment_id = self.new_experiment(tracking_store)
        location = tracking_store.get_experiment(experiment_id).artifact_location
        run = tracking_store.create_run(
            experiment_id, "ada", 1_234, "first", [_tag("mlflow.runName", "first"), _tag("k", "v")]
        )
        info = run.info
        assert re.fullmatch(r"[0-9a-f]{32}", info.run_id)
        assert (info.status, info.user_id, info.start_time, info.run_name) == (
            RUNNING,
            "ada",
            1_234,
            "first",
        )
        assert info.artifact_uri == f"{location}/{info.run_id}/artifacts"
        got = tracking_store.get_run(info.run_id)
        assert {t.key: t.value for t in got.data.tags} == {"mlflow.runName": "first", "k": "v"}
        assert not got.info.HasField("end_time")

    def test_runs_need_an_active_experiment_and_unknown_runs_do_not_exist(
        self, tracking_store: AbstractTrackingStore
    ) -> None:
        with pytest.raises(ResourceDoesNotExist):
            self.new_run(tracking_store, "987654321")
        experiment_id = self.new_experiment(tracking_store)
        tracking_store.delete_experiment(experiment_id)
        with pytest.raises(InvalidParameterValue):
            self.new_run(tracking_store, experiment_id)
        with pytest.raises(ResourceDoesNotExist):
            tracking_store.get_run(uuid.uuid4().hex)

    def test_update_run_changes_what_is_given_and_a_new_name_rewrites_the_tag(
        self, tracking_store: AbstractTrackingStore
    ) -> None:
        run_id = self.new_run(tracking_store, self.new_experiment(tracking_store), "before")
        tracking_store.update_run(run_id, FINISHED, 5_000, None)
        tracking_store.update_run(run_id, None, None, "after")
        run = tracking_store.get_run(run_id)
        assert (run.info.status, run.info.end_time, run.info.run_name) == (FINISHED, 5_000, "after")
        assert {t.key: t.value for t in run.data.tags}["mlflow.runName"] == "after"

    def test_a_deleted_run_is_read_only_until_restored(
        self, tracking_store: AbstractTrackingStore
    ) -> None:
        run_id = self.new_run(tracking_store, self.new_experiment(tracking_store))
        tracking_store.delete_run(run_id)
        tracking_store.delete_run(run_id)  # idempotent
        for write in (
            lambda: tracking_store.log_param(run_id, _param("p", "1")),
            lambda: tracking_store.log_metric(run_id, _metric("m", 1.0)),
            lambda: tracking_store.set_tag(run_id, _tag("t", "1")),
            lambda: tracking_store.log_batch(run_id, [_metric("m", 1.0)], [], []),
            lambda: tracking_store.update_run(run_id, FINISHED, None, None),
        ):
            with pytest.raises(InvalidParameterValue):
                write()
        data = tracking_store.get_run(run_id).data
        assert not data.params and not data.metrics
        tracking_store.restore_run(run_id)
        tracking_store.log_param(run_id, _param("p", "1"))
        assert [(p.key, p.value) for p in tracking_store.get_run(run_id).data.params] == [
            ("p", "1")
        ]

    # ----------------------------------------------------------------- run data

    def test_params_are_write_once(self, tracking_store: AbstractTrackingStore) -> None:
        run_id = self.new_run(tracking_store, self.new_experiment(tracking_store))
        tracking_store.log_param(run_id, _param("lr", "0.1"))
        tracking_store.log_param(run_id, _param("lr", "0.1"))  # the same value: a no-op
        with pytest.raises(InvalidParameterValue):
            tracking_store.log_param(run_id, _param("lr", "0.2"))
        with pytest.raises(InvalidParameterValue):
            tracking_store.log_batch(run_id, [], [_param("lr", "0.3")], [])
        assert [(p.key, p.value) for p in tracking_store.get_run(run_id).data.params] == [
            ("lr", "0.1")
        ]

    def test_a_batch_is_all_or_nothing(self, tracking_store: AbstractTrackingStore) -> None:
        run_id = self.new_run(tracking_store, self.new_experiment(tracking_store))
        tracking_store.log_param(run_id, _param("fixed", "a"))
        with pytest.raises(InvalidParameterValue):
            tracking_store.log_batch(
                run_id,
                [_metric("loss", 0.5)],
                [_param("new", "1"), _param("fixed", "b")],
                [_tag("note", "x")],
            )
        data = tracking_store.get_run(run_id).data
        assert [(p.key, p.value) for p in data.params] == [("fixed", "a")]
        assert not data.metrics
        assert "note" not in {t.key for t in data.tags}

    def test_the_latest_metric_is_the_highest_step_then_the_latest_time(
        self, tracking_store: AbstractTrackingStore
    ) -> None:
        run_id = self.new_run(tracking_store, self.new_experiment(tracking_store))
        tracking_store.log_batch(
            run_id,
            [_metric("loss", 0.3, 3_000, 3), _metric("loss", 0.1, 4_000, 1), _metric("loss", 0.2, 5_000, 2)],
            [],
            [],
        )  # fmt: skip
        tracking_store.log_metric(run_id, _metric("acc", 0.7, 2_000, 5))
        tracking_store.log_metric(run_id, _metric("acc", 0.8, 1_000, 5))  # same step, older
        tracking_store.log_metric(run_id, _metric("acc", 0.1, 9_000, 4))  # lower step, newer
        latest = {m.key: m.value for m in tracking_store.get_run(run_id).data.metrics}
        assert latest == {"loss": 0.3, "acc": 0.7}

    def test_nan_is_kept_and_matches_no_comparison(
        self, tracking_store: AbstractTrackingStore
    ) -> None:
        experiment_id = self.new_experiment(tracking_store)
        nan_run = self.new_run(tracking_store, experiment_id, "nan")
        high_run = self.new_run(tracking_store, experiment_id, "high")
        tracking_store.log_metric(nan_run, _metric("m", math.nan))
        tracking_store.log_metric(high_run, _metric("m", 0.9))
        history, _ = tracking_store.get_metric_history(nan_run, "m", 0, "")
        assert len(history) == 1 and math.isnan(history[0].value)
        for flt, expected in (("metrics.m > 0.5", ["high"]), ("metrics.m < 0.5", [])):
            found, _ = tracking_store.search_runs([experiment_id], flt, ACTIVE_ONLY, 100, [], "")
            assert self.names(found) == expected, flt

    def test_run_tags_overwrite_and_the_run_name_tag_renames(
        self, tracking_store: AbstractTrackingStore
    ) -> None:
        run_id = self.new_run(tracking_store, self.new_experiment(tracking_store), "old")
        tracking_store.set_tag(run_id, _tag("note", "first"))
        tracking_store.set_tag(run_id, _tag("note", "second"))
        tracking_store.set_tag(run_id, _tag("mlflow.runName", "new"))
        run = tracking_store.get_run(run_id)
        assert run.info.run_name == "new"
        assert {t.key: t.value for t in run.data.tags}["note"] == "second"
        tracking_store.delete_tag(run_id, "note")
        with pytest.raises(ResourceDoesNotExist):
            tracking_store.delete_tag(run_id, "note")

    def test_a_dataset_linked_twice_is_stored_once_with_the_new_tags(
        self, tracking_store: AbstractTrackingStore
    ) -> None:
        experiment_id = self.new_experiment(tracking_store)
        run_id = self.new_run(tracking_store, experiment_id, "with-data")
        self.new_run(tracking_store, experiment_id, "without")
        dataset = tracking_pb2.Dataset(name="iris", digest="d1", source_type="local", source="x")
        for context in ("train", "eval"):
            tracking_store.log_inputs(
                run_id,
                [tracking_pb2.DatasetInput(dataset=dataset, tags=[_tag("mlflow.data.context", context)])],
            )  # fmt: skip
        inputs = tracking_store.get_run(run_id).inputs.dataset_inputs
        assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [("iris", "d1")]
        assert [(t.key, t.value) for t in inputs[0].tags] == [("mlflow.data.context", "eval")]
        found, _ = tracking_store.search_runs(
            [experiment_id], "dataset.name = 'iris'", ACTIVE_ONLY, 100, [], ""
        )
        assert self.names(found) == ["with-data"]

    def test_search_datasets_lists_each_dataset_and_context_once(
        self, tracking_store: AbstractTrackingStore
    ) -> None:
        experiment_id = self.new_experiment(tracking_store)
        other = self.new_experiment(tracking_store)
        iris = tracking_pb2.Dataset(name="iris", digest="d1", source_type="local", source="x")
        wine = tracking_pb2.Dataset(name="wine", digest="d2", source_type="local", source="y")
        for name, used in (("a", [(iris, "train"), (wine, "")]), ("b", [(iris, "train")])):
            run_id = self.new_run(tracking_store, experiment_id, name)
            tracking_store.log_inputs(
                run_id,
                [
                    tracking_pb2.DatasetInput(
                        dataset=dataset,
                        tags=[_tag("mlflow.data.context", context)] if context else [],
                    )
                    for dataset, context in used
                ],
            )
        elsewhere = self.new_run(tracking_store, other, "c")
        tracking_store.log_inputs(
            elsewhere, [tracking_pb2.DatasetInput(dataset=iris, tags=[_tag("mlflow.data.context", "eval")])]
        )  # fmt: skip
        found = tracking_store.search_datasets([experiment_id, other], 100)
        assert [(s.experiment_id, s.name, s.digest, s.context) for s in found] == sorted(
            [
                (experiment_id, "iris", "d1", "train"),
                (experiment_id, "wine", "d2", ""),
                (other, "iris", "d1", "eval"),
            ],
            key=lambda row: (int(row[0]), row[1:]),
        )
        assert len(tracking_store.search_datasets([experiment_id, other], 2)) == 2
        assert tracking_store.search_datasets(["987654321"], 100) == []

    # ------------------------------------------------------------------- search

    def test_search_runs_filters_with_and_or_and_parentheses(
        self, tracking_store: AbstractTrackingStore
    ) -> None:
        experiment_id = self.new_experiment(tracking_store)
        for i in range(4):
            run_id = self.new_run(tracking_store, experiment_id, f"r{i}", start=1_000 + i)
            tracking_store.log_batch(
                run_id,
                [_metric("acc", i / 10)],
                [_param("lr", "0.01" if i % 2 else "0.1")],
                [_tag("team", "a" if i < 2 else "b")],
            )

        def search(flt: str) -> list[str]:
            found, _ = tracking_store.search_runs(
                [experiment_id], flt, ACTIVE_ONLY, 100, ["attributes.run_name ASC"], ""
            )
            return self.names(found)

        assert search("metrics.acc >= 0.1 AND params.lr = '0.01'") == ["r1", "r3"]
        assert search("tags.team = 'a' OR metrics.acc > 0.25") == ["r0", "r1", "r3"]
        assert search("(tags.team = 'b' OR params.lr = '0.01') AND metrics.acc < 0.25") == [
            "r1",
            "r2",
        ]
        assert search("attributes.run_name LIKE 'r%' AND attributes.start_time > 1001") == [
            "r2",
            "r3",
        ]
        assert search("tags.missing IS NULL AND params.lr != '0.1'") == ["r1", "r3"]
        with pytest.raises(InvalidParameterValue):
            search("metrics.acc >")

    def test_search_runs_orders_missing_values_last_and_pages(
        self, tracking_store: AbstractTrackingStore
    ) -> None:
        experiment_id = self.new_experiment(tracking_store)
        for i, value in enumerate([0.2, None, 0.9, 0.5]):
            run_id = self.new_run(tracking_store, experiment_id, f"r{i}", start=1_000 + i)
            if value is not None:
                tracking_store.log_metric(run_id, _metric("acc", value))
        for order, expected in (
            (["metrics.acc DESC"], ["r2", "r3", "r0", "r1"]),
            (["metrics.acc ASC"], ["r0", "r3", "r2", "r1"]),
            ([], ["r3", "r2", "r1", "r0"]),  # default: start_time DESC
        ):
            seen: list[str] = []
            token = ""
            while True:
                page, token = tracking_store.search_runs(
                    [experiment_id], "", ACTIVE_ONLY, 3, order, token
                )
                seen += self.names(page)
                if not token:
                    break
            assert seen == expected, order
        with pytest.raises(InvalidParameterValue):
            tracking_store.search_runs([experiment_id], "", ACTIVE_ONLY, 3, [], "not-a-token")

    def test_every_searchable_run_attribute_filters_and_orders(
        self, tracking_store: AbstractTrackingStore
    ) -> None:
        # Each attribute of the grammar's one table (RUN_ATTRIBUTES), so a new one is checked
        # on every store without a test of its own.
        experiment_id = self.new_experiment(tracking_store)
        earlier = self.new_run(tracking_store, experiment_id, "earlier", start=1_000)
        later = self.new_run(tracking_store, experiment_id, "later", start=2_000)
        tracking_store.update_run(earlier, RUNNING, 1_500, None)
        tracking_store.update_run(later, FINISHED, 3_000, None)
        infos = {
            name: tracking_store.get_run(run).info
            for name, run in (("earlier", earlier), ("later", later))
        }

        def value_of(info: tracking_pb2.RunInfo, field: str) -> object:
            value = getattr(info, field)
            if field == "status":
                return tracking_pb2.RunStatus.Name(value).removeprefix("RUN_STATUS_")
            return value

        for name, attribute in RUN_ATTRIBUTES.items():
            value = value_of(infos["later"], attribute.field)
            literal = str(value) if attribute.numeric else f"'{value}'"
            found, _ = tracking_store.search_runs(
                [experiment_id], f"attributes.{name} = {literal}", ACTIVE_ONLY, 10, [], ""
            )
            expected = [n for n, i in infos.items() if value_of(i, attribute.field) == value]
            assert sorted(self.names(found)) == expected, name
            ordered, _ = tracking_store.search_runs(
                [experiment_id], "", ACTIVE_ONLY, 10, [f"attributes.{name} ASC"], ""
            )
            assert sorted(self.names(ordered)) == ["earlier", "later"], name
            if attribute.numeric:
                assert self.names(ordered) == ["earlier", "later"], name

    def test_search_runs_honours_the_view_type(self, tracking_store: AbstractTrackingStore) -> None:
        experiment_id = self.new_experiment(tracking_store)
        self.new_run(tracking_store, experiment_id, "alive")
        tracking_store.delete_run(self.new_run(tracking_store, experiment_id, "gone"))
        for view, expected in (
            (ACTIVE_ONLY, {"alive"}),
            (DELETED_ONLY, {"gone"}),
            (ALL, {"alive", "gone"}),
        ):
            found, _ = tracking_store.search_runs([experiment_id], "", view, 100, [], "")
            assert set(self.names(found)) == expected

    # ------------------------------------------------------------------ history

    def test_metric_history_is_ordered_by_step_and_paged(
        self, tracking_store: AbstractTrackingStore
    ) -> None:
        run_id = self.new_run(tracking_store, self.new_experiment(tracking_store))
        points = [_metric("loss", float(step), 10_000 - step, step) for step in (4, 0, 3, 1, 2)]
        tracking_store.log_batch(run_id, points, [], [])
        whole, token = tracking_store.get_metric_history(run_id, "loss", 0, "")
        assert [m.step for m in whole] == [0, 1, 2, 3, 4] and token == ""
        first, token = tracking_store.get_metric_history(run_id, "loss", 2, "")
        rest, last = tracking_store.get_metric_history(run_id, "loss", 10, token)
        assert [m.step for m in first + rest] == [0, 1, 2, 3, 4] and last == ""
        chunks = list(tracking_store.iter_metric_history(run_id, "loss", 2))
        assert [len(c) for c in chunks] == [2, 2, 1]
        assert [p[0] for c in chunks for p in c] == [0, 1, 2, 3, 4]
        assert tracking_store.get_metric_history(run_id, "other", 0, "") == ([], "")
        with pytest.raises(ResourceDoesNotExist):
            tracking_store.get_metric_history(uuid.uuid4().hex, "loss", 0, "")

    def test_bulk_interval_keeps_first_and_last_steps_and_one_point_per_step(
        self, tracking_store: AbstractTrackingStore
    ) -> None:
        experiment_id = self.new_experiment(tracking_store)
        first = self.new_run(tracking_store, experiment_id)
        second = self.new_run(tracking_store, experiment_id)
        tracking_store.log_batch(
            first, [_metric("m", float(s), 1_000, s) for s in range(20)], [], []
        )
        tracking_store.log_metric(first, _metric("m", 99.0, 2_000, 19))  # step 19 again, later
        tracking_store.log_batch(second, [_metric("m", 1.0, 1_000, s) for s in (5, 6)], [], [])
        got = tracking_store.get_metric_history_bulk_interval([second, first], "m", None, None, 5)
        assert [p.run_id for p in got] == [second] * 2 + [first] * 5
        steps = [p.metric.step for p in got if p.run_id == first]
        assert steps[0] == 0 and steps[-1] == 19 and steps == sorted(set(steps))
        assert [p.metric.value for p in got if p.metric.step == 19] == [99.0]
        window = tracking_store.get_metric_history_bulk_interval([first], "m", 3, 6, 10)
        assert [p.metric.step for p in window] == [3, 4, 5, 6]
