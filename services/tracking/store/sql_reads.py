"""Bulk reads of runs: a run with its data, a search page with its data, dataset inputs.

Pages are fetched with their params, tags and latest metrics in one statement (no N+1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid_services.common.sql_dialect import POSTGRESQL, ids_condition, ids_value, typed_null

from . import logged_model_schema as lms
from . import schema as t
from .rows import RUN_INFO_COLUMNS, PageRow, fill_run_info_from_page_row, run_info_from_row
from .sql_base import SqlStoreBase
from .sql_filters import DATASET_CONTEXT_TAG


class RunReadsMixin(SqlStoreBase):
    # --------------------------------------------------------------- bulk reads

    def _in_ids(self, column: Any) -> Any:
        """``column IN <the ids bound as parameter "ids">`` (see sql_dialect.ids_condition)."""
        return ids_condition(self.dialect, column)

    def _ids_value(self, ids: list[str]) -> Any:
        return ids_value(self.dialect, ids)

    def _run_data(self, conn: Connection, run_ids: list[str]) -> dict[str, tracking_pb2.Run]:
        """Runs (info, params, tags, latest metrics) of ``run_ids`` in two queries."""
        if not run_ids:
            return {}
        rows = conn.execute(
            sa.select(*RUN_INFO_COLUMNS).where(self._in_ids(t.runs.c.run_uuid)),
            {"ids": self._ids_value(run_ids)},
        ).fetchall()
        runs = {row[0]: tracking_pb2.Run(info=run_info_from_row(row)) for row in rows}
        self._attach_data(conn, runs)
        return runs

    def _attach_data(self, conn: Connection, runs: dict[str, tracking_pb2.Run]) -> None:
        """Adds params, tags and latest metrics to ``runs`` with ONE query (UNION ALL of the
        three tables, tagged by kind): one round trip per page, whatever its size."""
        if not runs:
            return
        p, g, lm = t.params.c, t.tags.c, t.latest_metrics.c
        null_float = typed_null(self.dialect, sa.Float(53))
        null_int = typed_null(self.dialect, sa.BigInteger)
        null_bool = typed_null(self.dialect, sa.Boolean)
        null_text = typed_null(self.dialect, sa.String)
        union = sa.union_all(
            sa.select(
                sa.literal(0), p.run_uuid, p.key, p.value, null_float, null_bool, null_int, null_int
            ).where(self._in_ids(p.run_uuid)),
            sa.select(
                sa.literal(1), g.run_uuid, g.key, g.value, null_float, null_bool, null_int, null_int
            ).where(self._in_ids(g.run_uuid)),
            sa.select(
                sa.literal(2),
                lm.run_uuid,
                lm.key,
                null_text,
                lm.value,
                lm.is_nan,
                lm.timestamp,
                lm.step,
            ).where(self._in_ids(lm.run_uuid)),
        )
        rows = conn.execute(union, {"ids": self._ids_value(list(runs))}).fetchall()
        for kind, run_uuid, key, text, number, is_nan, timestamp, step in rows:
            data = runs[run_uuid].data
            if kind == 0:
                data.params.add(key=key, value=text)
            elif kind == 1:
                data.tags.add(key=key, value=text)
            else:
                data.metrics.add(
                    key=key, value=math.nan if is_nan else number, timestamp=timestamp, step=step
                )

    def _page_statement(
        self,
        source: Any,
        conditions: list[Any],
        ordering: list[Any],
        *,
        offset: int,
        limit: int,
    ) -> Any:
        """The statement of one page of runs with their params, tags and latest metrics.

        The page (ordered, limited) is a CTE numbered by row_number(); a UNION ALL then returns
        the page's run rows and the params, tags and latest metrics of its runs, each row tagged
        by kind. No id list travels back and forth and there is a single round trip.

        The data rows are found by run id in the page: on PostgreSQL ``= ANY(<the page's ids as
        one array>)``, which probes each table's (run_uuid, key) primary key per run; a join
        to the page let the planner hash whole tables instead (measured: ~1 ms more per page of
        100 runs, growing with the tables).
        """
        page = (
            sa.select(*RUN_INFO_COLUMNS, sa.func.row_number().over(order_by=ordering).label("ord"))
            .select_from(source)
            .where(*conditions)
            .order_by(*ordering)
            .offset(offset)
            .limit(limit)
            .cte("page")
        )
        pc = page.c
        if self.dialect == POSTGRESQL:
            from sqlalchemy.dialects import postgresql  # not loaded by SQLite stores

            ids = sa.select(sa.func.array_agg(pc.run_uuid)).scalar_subquery()
            page_ids = sa.any_(sa.cast(ids, postgresql.ARRAY(sa.String)))

            def in_page(column: Any) -> Any:
                return column == page_ids

        else:

            def in_page(column: Any) -> Any:
                return column.in_(sa.select(pc.run_uuid))

        null_text = typed_null(self.dialect, sa.String)
        null_int = typed_null(self.dialect, sa.BigInteger)
        null_float = typed_null(self.dialect, sa.Float(53))
        null_bool = typed_null(self.dialect, sa.Boolean)

        def arm(
            kind: int,
            run_uuid: Any,
            *,
            order: Any = null_int,
            texts: Sequence[Any] = (),
            number: Any = None,
            flag: Any = None,
            ints: Sequence[Any] = (),
        ) -> Any:
            """One SELECT of the union in PageRow's layout, the slots a kind does not use as
            typed NULLs."""
            return sa.select(
                sa.literal(kind),
                order,
                run_uuid,
                *texts,
                *[null_text] * (PageRow.TEXTS - len(texts)),
                null_float if number is None else number,
                null_bool if flag is None else flag,
                *ints,
                *[null_int] * (PageRow.INTEGERS - len(ints)),
            )

        p, g, lm, ri = t.params, t.tags, t.latest_metrics, t.run_inputs
        mo, mi = lms.run_model_outputs, lms.run_model_inputs
        run_texts, run_ints = PageRow.run_slots(pc)
        metric_ints = (null_int, lm.c.timestamp, lm.c.step)
        output_ints = (null_int, null_int, mo.c.step)
        union = sa.union_all(
            arm(PageRow.RUN, pc.run_uuid, order=pc.ord, texts=run_texts, ints=run_ints),
            arm(PageRow.PARAM, p.c.run_uuid, texts=(p.c.key, p.c.value)).where(
                in_page(p.c.run_uuid)
            ),
            arm(PageRow.TAG, g.c.run_uuid, texts=(g.c.key, g.c.value)).where(in_page(g.c.run_uuid)),
            arm(
                PageRow.METRIC,
                lm.c.run_uuid,
                texts=(lm.c.key,),
                number=lm.c.value,
                flag=lm.c.is_nan,
                ints=metric_ints,
            ).where(in_page(lm.c.run_uuid)),
            # Which runs have dataset inputs (kind 4): usually none, found by the primary key
            # of run_inputs; the inputs themselves are read only for those runs.
            arm(PageRow.INPUTS, ri.c.run_uuid).where(in_page(ri.c.run_uuid)).distinct(),
            # MLflow 3's logged models a run produced and used (few, and usually none): read
            # whole here, by each table's (run_uuid, model_id) primary key, as get_run has them.
            arm(
                PageRow.MODEL_OUTPUT, mo.c.run_uuid, texts=(mo.c.model_id,), ints=output_ints
            ).where(in_page(mo.c.run_uuid)),
            arm(PageRow.MODEL_INPUT, mi.c.run_uuid, texts=(mi.c.model_id,)).where(
                in_page(mi.c.run_uuid)
            ),
        )
        return union

    @staticmethod
    def _runs_from_page_rows(rows: Sequence[Any]) -> tuple[list[tracking_pb2.Run], list[str]]:
        """Runs from the rows of :meth:`_page_statement`, in page order, and the ids of those
        that have dataset inputs (see :meth:`_add_inputs`). The rows are plain DB-API tuples:
        skipping SQLAlchemy's Row wrapping halves the fetch cost of a large page, and every
        column here is a native driver type already."""
        runs: dict[str, tuple[int, tracking_pb2.Run]] = {}
        for row in rows:
            if row[0] == PageRow.RUN:
                # Fill in place: building RunInfo apart and passing it to Run() copies it.
                run = tracking_pb2.Run()
                fill_run_info_from_page_row(run.info, row)
                runs[row[2]] = (row[1], run)
        with_inputs: list[str] = []
        outputs: dict[str, list[tuple[int, str]]] = {}
        inputs: dict[str, list[str]] = {}
        data_of = PageRow.data
        for row in rows:
            kind, run_uuid, key, text, number, is_nan, timestamp, step = data_of(row)
            if kind == PageRow.PARAM:
                runs[run_uuid][1].data.params.add(key=key, value=text)
            elif kind == PageRow.TAG:
                runs[run_uuid][1].data.tags.add(key=key, value=text)
            elif kind == PageRow.METRIC:
                runs[run_uuid][1].data.metrics.add(
                    key=key, value=math.nan if is_nan else number, timestamp=timestamp, step=step
                )
            elif kind == PageRow.INPUTS:
                with_inputs.append(run_uuid)
            elif kind == PageRow.MODEL_OUTPUT:
                outputs.setdefault(run_uuid, []).append((step, key))
            elif kind == PageRow.MODEL_INPUT:
                inputs.setdefault(run_uuid, []).append(key)
        for run_uuid, produced in outputs.items():  # in get_run's order: step, then model id
            for step, model_id in sorted(produced):
                runs[run_uuid][1].outputs.model_outputs.add(model_id=model_id, step=step)
        for run_uuid, used in inputs.items():
            for model_id in sorted(used):
                runs[run_uuid][1].inputs.model_inputs.add(model_id=model_id)
        ordered = [run for _, run in sorted(runs.values(), key=lambda pair: pair[0])]
        return ordered, with_inputs

    def _add_inputs(self, runs: Sequence[tracking_pb2.Run], run_ids: Sequence[str]) -> None:
        """Fills the dataset inputs of ``runs`` (those of ``run_ids`` have some)."""
        if not run_ids:
            return
        with self._read() as conn:
            inputs = self._inputs_of(conn, run_ids)
        for run in runs:
            found = inputs.get(run.info.run_id)
            if found:
                run.inputs.dataset_inputs.extend(found)

    def _run_inputs(self, conn: Connection, run_id: str) -> list[tracking_pb2.DatasetInput]:
        return self._inputs_of(conn, [run_id]).get(run_id, [])

    def _inputs_of(
        self, conn: Connection, run_ids: Sequence[str]
    ) -> dict[str, list[tracking_pb2.DatasetInput]]:
        """The dataset inputs of each of ``run_ids`` (by dataset name and digest; tags by key)."""
        d, ri, rit = t.datasets.c, t.run_inputs.c, t.run_input_tags.c
        rows = conn.execute(
            sa.select(
                ri.run_uuid,
                d.dataset_uuid,
                d.name,
                d.digest,
                d.source_type,
                d.source,
                d.schema,
                d.profile,
            )
            .join(t.run_inputs, ri.dataset_uuid == d.dataset_uuid)
            .where(ri.run_uuid.in_(list(run_ids)))
            .order_by(d.name, d.digest)
        )
        found: dict[tuple[str, str], tracking_pb2.DatasetInput] = {}
        by_run: dict[str, list[tracking_pb2.DatasetInput]] = {}
        for run_uuid, uuid, name, digest, source_type, source, schema_, profile in rows:
            item = tracking_pb2.DatasetInput(
                dataset=tracking_pb2.Dataset(
                    name=name,
                    digest=digest,
                    source_type=source_type,
                    source=source,
                    schema=schema_,
                    profile=profile,
                )
            )
            found[(run_uuid, uuid)] = item
            by_run.setdefault(run_uuid, []).append(item)
        if found:
            tag_rows = conn.execute(
                sa.select(rit.run_uuid, rit.dataset_uuid, rit.key, rit.value)
                .where(rit.run_uuid.in_(list(run_ids)))
                .order_by(rit.key)
            )
            for run_uuid, uuid, key, value in tag_rows:
                tagged = found.get((run_uuid, uuid))
                if tagged is not None:
                    tagged.tags.append(common_pb2.Tag(key=key, value=value))
        return by_run

    def search_datasets(
        self, experiment_ids: Sequence[str], limit: int
    ) -> list[tracking_pb2.DatasetSummary]:
        d, ri, rit = t.datasets.c, t.run_inputs.c, t.run_input_tags.c
        numbers = [int(e) for e in experiment_ids if e.isdigit() and len(e) < 10]
        # The context tag is an outer join: an input without one is listed with context "".
        context_tag = sa.and_(
            rit.run_uuid == ri.run_uuid,
            rit.dataset_uuid == ri.dataset_uuid,
            rit.key == DATASET_CONTEXT_TAG,
        )
        context = sa.func.coalesce(rit.value, "")
        statement = (
            sa.select(d.experiment_id, d.name, d.digest, context)
            .distinct()
            .select_from(t.datasets)
            .join(t.run_inputs, ri.dataset_uuid == d.dataset_uuid)
            .outerjoin(t.run_input_tags, context_tag)
            .where(d.experiment_id.in_(numbers))
            .order_by(d.experiment_id, d.name, d.digest, context)
            .limit(limit)
        )
        with self._read() as conn:
            rows = conn.execute(statement).all()
        return [
            tracking_pb2.DatasetSummary(
                experiment_id=str(experiment_id), name=name, digest=digest, context=value
            )
            for experiment_id, name, digest, value in rows
        ]
