"""Runs in the SQL tracking store: create, get, update, delete, restore, search."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist
from mlgrid.store.paging import decode_page_token, encode_page_token
from mlgrid.store.search_filter import (
    BoolOp,
    Comparison,
    FilterNode,
    check_run_filter,
    parse_run_order_by,
)

from . import schema as t
from .rows import STATUS_NAMES, PageRow, run_info_from_row
from .sql_base import parse_experiment_id
from .sql_filters import (
    compile_run_filter,
    joined_comparison,
    lifecycle_condition,
    run_attribute_column,
)
from .sql_reads import RunReadsMixin

#: The tag MLflow mirrors the run name into.
RUN_NAME_TAG = "mlflow.runName"

_R = t.runs.c
_KEY_TABLES = {"metric": t.latest_metrics, "param": t.params, "tag": t.tags}


class RunsMixin(RunReadsMixin):
    def create_run(
        self,
        experiment_id: str,
        user_id: str,
        start_time: int,
        run_name: str,
        tags: Sequence[common_pb2.Tag],
    ) -> tracking_pb2.Run:
        number = parse_experiment_id(experiment_id)
        run_id = uuid.uuid4().hex
        unique_tags = {tag.key: tag.value for tag in tags}
        if self._fast is not None:
            stage, artifact_uri = self._fast.create_run(
                number, run_id, run_name, user_id, start_time, unique_tags
            )
        else:
            stage, artifact_uri = self._create_run_in_transaction(
                number, run_id, run_name, user_id, start_time, unique_tags
            )
        if stage is None:
            raise ResourceDoesNotExist(f"No experiment with id {experiment_id!r}")
        if stage != t.ACTIVE:
            raise InvalidParameterValue(
                f"Cannot create a run in experiment {experiment_id}: it is deleted "
                "(restore it first)"
            )
        run = tracking_pb2.Run(
            info=tracking_pb2.RunInfo(
                run_id=run_id,
                run_name=run_name,
                experiment_id=str(number),
                user_id=user_id,
                status=tracking_pb2.RUN_STATUS_RUNNING,
                start_time=start_time,
                artifact_uri=artifact_uri,
                lifecycle_stage=t.ACTIVE,
            )
        )
        for key, value in unique_tags.items():
            run.data.tags.add(key=key, value=value)
        run.inputs.SetInParent()  # as get_run answers: present, no datasets yet
        self._note_new_run()
        return run

    def _create_run_in_transaction(
        self,
        number: int,
        run_id: str,
        run_name: str,
        user_id: str,
        start_time: int,
        tags: dict[str, str],
    ) -> tuple[str | None, str]:
        with self._write() as conn:
            row = conn.execute(
                sa.select(t.experiments.c.lifecycle_stage, t.experiments.c.artifact_location).where(
                    t.experiments.c.experiment_id == number
                )
            ).first()
            if row is None or row[0] != t.ACTIVE:
                return (None if row is None else row[0]), ""
            artifact_uri = f"{row[1].rstrip('/')}/{run_id}/artifacts"
            values = {
                "run_uuid": run_id,
                "name": run_name,
                "experiment_id": number,
                "user_id": user_id,
                "status": "RUNNING",
                "start_time": start_time,
                "end_time": None,
                "artifact_uri": artifact_uri,
                "lifecycle_stage": t.ACTIVE,
                "deleted_with_experiment": False,
            }
            conn.execute(t.runs.insert(), values)
            self._insert_rows(
                conn,
                t.tags.insert(),
                [{"run_uuid": run_id, "key": k, "value": v} for k, v in tags.items()],
            )
        return t.ACTIVE, artifact_uri

    def get_run(self, run_id: str) -> tracking_pb2.Run:
        with self._read() as conn:
            found = self._run_data(conn, [run_id])
            if run_id not in found:
                raise ResourceDoesNotExist(f"Run {run_id!r} not found")
            run = found[run_id]
            run.inputs.dataset_inputs.extend(self._run_inputs(conn, run_id))
            return run

    def _run_info(self, conn: Any, run_id: str) -> tracking_pb2.RunInfo:
        row = conn.execute(sa.select(*self.run_info_columns).where(_R.run_uuid == run_id)).first()
        return run_info_from_row(row)

    def _set_run_name_tag(self, conn: Any, run_id: str, run_name: str) -> None:
        conn.execute(
            self._upsert(t.tags, ("run_uuid", "key"), ("value",)),
            {"run_uuid": run_id, "key": RUN_NAME_TAG, "value": run_name},
        )

    def update_run(
        self, run_id: str, status: int | None, end_time: int | None, run_name: str | None
    ) -> tracking_pb2.RunInfo:
        changes: dict[str, Any] = {}
        if status is not None:
            changes["status"] = STATUS_NAMES[status]
        if end_time is not None:
            changes["end_time"] = end_time
        if run_name is not None:
            changes["name"] = run_name
        with self._write() as conn:
            self._check_run_writable(conn, run_id)
            if changes:
                conn.execute(t.runs.update().where(_R.run_uuid == run_id).values(**changes))
            if run_name is not None:
                self._set_run_name_tag(conn, run_id, run_name)
            return self._run_info(conn, run_id)

    def delete_run(self, run_id: str) -> None:
        with self._write() as conn:
            self._check_run_exists(conn, run_id)
            conn.execute(
                t.runs.update()
                .where(_R.run_uuid == run_id)
                .values(lifecycle_stage=t.DELETED, deleted_with_experiment=False)
            )

    def restore_run(self, run_id: str) -> None:
        with self._write() as conn:
            self._check_run_exists(conn, run_id)
            experiment_stage = conn.execute(
                sa.select(t.experiments.c.lifecycle_stage)
                .join(t.runs, _R.experiment_id == t.experiments.c.experiment_id)
                .where(_R.run_uuid == run_id)
            ).scalar()
            if experiment_stage != t.ACTIVE:
                raise InvalidParameterValue(
                    f"Cannot restore run {run_id}: its experiment is deleted (restore the "
                    "experiment, which restores the runs deleted with it)"
                )
            conn.execute(
                t.runs.update()
                .where(_R.run_uuid == run_id)
                .values(lifecycle_stage=t.ACTIVE, deleted_with_experiment=False)
            )

    # -------------------------------------------------------------------- search

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str,
        view_type: int,
        max_results: int,
        order_by: Sequence[str],
        page_token: str,
    ) -> tuple[list[tracking_pb2.Run], str]:
        offset = decode_page_token(page_token, "runs")
        limit = max_results + 1

        def page_rows(numbers_first: bool) -> Sequence[Any] | None:
            def statement() -> Any:
                return self._search_statement(
                    experiment_ids, filter_string, view_type, order_by, offset, limit,
                    numbers_first=numbers_first,
                )  # fmt: skip

            if self._fast is not None:
                key = (
                    tuple(experiment_ids), filter_string, view_type, tuple(order_by), offset,
                    limit, numbers_first,
                )  # fmt: skip
                return self._fast.search_rows(key, statement)
            built = statement()
            if built is None:
                return None
            with self._read() as conn:
                return conn.execute(built).cursor.fetchall()  # type: ignore[no-any-return]

        # Ordered by a metric: the runs that have a number for it come first, and an index on
        # latest_metrics (key, is_nan, value) walks them in order, so a page costs the same at
        # 10k or 1M runs. Only when that group cannot fill the page (the page reaches the runs
        # without the metric, or NaN) does the general statement run, which sorts every match.
        rows = page_rows(numbers_first=True)
        if rows is None or sum(row[0] == PageRow.RUN for row in rows) < limit:
            rows = page_rows(numbers_first=False)
        assert rows is not None
        runs, with_inputs = self._runs_from_page_rows(rows)
        more = len(runs) > max_results
        runs = runs[:max_results]
        # Dataset inputs, as MLflow's search returns them: only runs that have some cost a read.
        self._add_inputs(runs, with_inputs)
        token = encode_page_token(offset + max_results, "runs") if more else ""
        return runs, token

    def _search_statement(
        self,
        experiment_ids: Sequence[str],
        filter_string: str,
        view_type: int,
        order_by: Sequence[str],
        offset: int,
        limit: int,
        numbers_first: bool = False,
    ) -> Any:
        """The one statement of a search page (see RunReadsMixin._page_statement).

        ``numbers_first``: the page within the runs that have a number (not missing, not NaN)
        for the first ordering metric; its rows are the general page's whenever it is full,
        since those runs sort before the others. None when the first ordering is not a metric,
        or a filter already joins that metric (the general statement is then this one).
        """
        tree = check_run_filter(filter_string)
        clauses = parse_run_order_by(list(order_by))
        numbers = [int(e) for e in experiment_ids if e.isdigit() and len(e) < 10]
        source: Any = t.runs
        conditions: list[Any] = [
            _R.experiment_id.in_(numbers),
            lifecycle_condition(_R.lifecycle_stage, view_type),
        ]
        # Top-level AND comparisons on metrics/params/tags become inner joins on the (run, key)
        # primary key rather than EXISTS: the planner may then hash-join whole key ranges, and an
        # ORDER BY on the same key reuses the join instead of probing the table again.
        joined: dict[tuple[str, str], Any] = {}
        rest: list[FilterNode] = []
        conjuncts = tree.operands if isinstance(tree, BoolOp) and tree.op == "AND" else [tree]
        for node in conjuncts:
            if (
                isinstance(node, Comparison)
                and node.kind in _KEY_TABLES
                and node.op not in ("IS NULL", "IS NOT NULL")
            ):
                alias = joined.get((node.kind, node.key))
                if alias is None:
                    alias = _KEY_TABLES[node.kind].alias(f"f_{len(joined)}")
                    joined[(node.kind, node.key)] = alias
                    source = source.join(
                        alias, sa.and_(alias.c.run_uuid == _R.run_uuid, alias.c.key == node.key)
                    )
                conditions.append(joined_comparison(alias, node))
            elif node is not None:
                rest.append(node)
        if numbers_first:
            first = clauses[0] if clauses else None
            if first is None or first.kind != "metric" or ("metric", first.key) in joined:
                return None
            alias = t.latest_metrics.alias(f"f_{len(joined)}")
            joined[("metric", first.key)] = alias
            source = source.join(
                alias, sa.and_(alias.c.run_uuid == _R.run_uuid, alias.c.key == first.key)
            )
            conditions.append(alias.c.is_nan.is_(False))
        if rest:
            conditions.append(
                compile_run_filter(rest[0] if len(rest) == 1 else BoolOp("AND", tuple(rest)))
            )
        ordering: list[Any] = []
        for index, clause in enumerate(clauses):
            if clause.kind == "attribute":
                column: Any = run_attribute_column(clause.key)
                missing: Any = sa.case((column.is_(None), 1), else_=0)
                ordering += [missing, column.asc() if clause.ascending else column.desc()]
                continue
            alias = joined.get((clause.kind, clause.key))
            if alias is not None:
                # Inner-joined by the filter: the value is present, and a metric's is not NaN
                # (joined_comparison requires it), so the missing/NaN rank is the same for every
                # row. Leaving it out lets the planner sort on the value alone.
                column = alias.c.value
                ordering.append(column.asc() if clause.ascending else column.desc())
                continue
            alias = _KEY_TABLES[clause.kind].alias(f"order_{index}")
            source = source.outerjoin(
                alias, sa.and_(alias.c.run_uuid == _R.run_uuid, alias.c.key == clause.key)
            )
            column = alias.c.value
            if clause.kind == "metric":
                # Missing values last, then NaN, then numbers (either direction).
                missing = sa.case((column.is_(None), 2), (alias.c.is_nan.is_(True), 1), else_=0)
            else:
                missing = sa.case((column.is_(None), 1), else_=0)
            ordering += [missing, column.asc() if clause.ascending else column.desc()]
        ordering += [_R.start_time.desc(), _R.run_uuid.asc()]
        return self._page_statement(source, conditions, ordering, offset=offset, limit=limit)
