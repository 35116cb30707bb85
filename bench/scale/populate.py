"""Fills a store with many rows at once, in SQL, the same rows for mlgrid and for MLflow.

Creating a million runs through either server would take hours and measure the write path, not
the read path the scale tier is about. The rows go straight into each server's own tables with
set-based ``INSERT ... SELECT FROM generate_series``: run ``g`` gets the same id, name, times,
params, tag and metric value in both stores. Experiments and runs that the servers must know
about (ids, artifact locations) are created through their APIs first.

MLflow's columns are read from ``information_schema`` when the rows are written, not assumed: a
column the statement does not fill must be nullable or have a default, otherwise population stops
naming it (a newer MLflow schema then needs a look rather than silently different rows).

mlgrid keeps derived data beside the raw rows, and it must stay consistent: every metric point
carries its series number (services/tracking/store/series.py, a hash PostgreSQL cannot compute,
so the points of many series are written with COPY from here), and ``latest_metrics`` holds each
key's greatest point.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from mlgrid_services.tracking.store.series import metric_series

#: The param every run has (three values, so an equality filter keeps a third of the runs), the
#: metric every run has, and MLflow's run-name tag.
PARAM_KEY = "lr"
PARAM_VALUES = ("0.01", "0.001", "0.1")
METRIC_KEY = "acc"
START_MS = 1_700_000_000_000

#: SQL expressions of run number ``g``: its id (32 hex digits), its metric value (spread over
#: [0, 1) by a multiplicative hash, so the order is unrelated to insertion order) and its param.
RUN_ID = "md5('scale-' || {prefix} || '-' || g)"
METRIC_VALUE = "((g::bigint * 2654435761) % 1000003)::float8 / 1000003"
PARAM_VALUE = "(ARRAY['0.01','0.001','0.1'])[1 + g % 3]"


@contextmanager
def connect(url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


class Columns:
    """A table's columns as information_schema describes them."""

    def __init__(self, conn: psycopg.Connection, table: str) -> None:
        rows = conn.execute(
            "SELECT column_name, is_nullable = 'YES', column_default IS NOT NULL "
            "FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = %s",
            (table,),
        ).fetchall()
        if not rows:
            raise RuntimeError(f"table {table!r} not found in the store's schema")
        self.table = table
        self.optional = {name for name, nullable, default in rows if nullable or default}
        self.names = {name for name, _, _ in rows}

    def insert(self, values: dict[str, str], source: str) -> str:
        """``INSERT INTO table (...) SELECT <values> FROM source``, checked against the schema."""
        unknown = set(values) - self.names
        if unknown:
            raise RuntimeError(f"{self.table} has no column(s) {sorted(unknown)}")
        unfilled = self.names - set(values) - self.optional
        if unfilled:
            raise RuntimeError(
                f"{self.table} needs column(s) {sorted(unfilled)} the bench does not fill; "
                "teach bench/scale/populate.py what they mean"
            )
        names = ", ".join(f'"{n}"' for n in values)
        return f"INSERT INTO {self.table} ({names}) SELECT {', '.join(values.values())} {source}"


def add_runs(
    server: str, url: str, experiment_id: str, artifact_root: str, first: int, last: int
) -> None:
    """Runs ``first``..``last`` (inclusive) of the scale experiment, each with one param, one
    metric point (and its latest value) and MLflow's run-name tag."""
    prefix = f"'{int(experiment_id)}'"
    run_id = RUN_ID.format(prefix=prefix)
    source = f"FROM generate_series({int(first)}, {int(last)}) AS g"
    with connect(url) as conn:
        runs = Columns(conn, "runs")
        values = {
            "run_uuid": run_id,
            "name": "'run-' || g",
            "experiment_id": str(int(experiment_id)),
            "user_id": "'bench'",
            "status": "'FINISHED'",
            "start_time": f"{START_MS} + g",
            "end_time": f"{START_MS} + g + 1000",
            "artifact_uri": f"{_literal(artifact_root)} || '/' || {run_id} || '/artifacts'",
            "lifecycle_stage": "'active'",
        }
        if server == "mlgrid":
            values["deleted_with_experiment"] = "false"
        else:
            # MLflow's columns about where a run came from; its own create_run fills them so.
            values |= {
                "source_type": "'UNKNOWN'",
                "source_name": "''",
                "entry_point_name": "''",
                "source_version": "''",
            }
            values = {k: v for k, v in values.items() if k in runs.names}
        conn.execute(runs.insert(values, source))
        conn.execute(
            Columns(conn, "params").insert(
                {"run_uuid": run_id, "key": f"'{PARAM_KEY}'", "value": PARAM_VALUE}, source
            )
        )
        conn.execute(
            Columns(conn, "tags").insert(
                {"run_uuid": run_id, "key": "'mlflow.runName'", "value": "'run-' || g"}, source
            )
        )
        point = {
            "run_uuid": run_id,
            "key": f"'{METRIC_KEY}'",
            "value": METRIC_VALUE,
            "timestamp": f"{START_MS} + g",
            "step": "0",
            "is_nan": "false",
        }
        conn.execute(Columns(conn, "latest_metrics").insert(point, source))
        if server == "mlgrid":
            _copy_points_with_series(conn, first, last, prefix)
        else:
            conn.execute(Columns(conn, "metrics").insert(point, source))
        for table in ("runs", "params", "tags", "latest_metrics", "metrics"):
            conn.execute(f"ANALYZE {table}")


def _copy_points_with_series(conn: psycopg.Connection, first: int, last: int, prefix: str) -> None:
    """mlgrid's metric points of runs first..last, each with its series number."""
    run_id = RUN_ID.format(prefix=prefix)
    rows = conn.execute(
        f"SELECT {run_id}, {START_MS} + g, {METRIC_VALUE} "
        f"FROM generate_series({int(first)}, {int(last)}) AS g"
    )
    with conn.cursor().copy(
        "COPY metrics (run_uuid, key, step, timestamp, value, is_nan, series) FROM STDIN"
    ) as copy:
        for rid, ts, value in rows:
            copy.write_row((rid, METRIC_KEY, 0, ts, value, False, metric_series(rid, METRIC_KEY)))


def add_history(server: str, url: str, run_id: str, key: str, points: int) -> None:
    """``points`` points of one metric (steps 0..points-1) and its latest value."""
    source = f"FROM generate_series(0, {int(points) - 1}) AS g"
    point = {
        "run_uuid": _literal(run_id),
        "key": _literal(key),
        "value": "sin(g / 1000.0)",
        "timestamp": f"{START_MS} + g",
        "step": "g",
        "is_nan": "false",
    }
    with connect(url) as conn:
        values = dict(point)
        if server == "mlgrid":
            values["series"] = str(metric_series(run_id, key))
        conn.execute(Columns(conn, "metrics").insert(values, source))
        last = dict(point)
        last_source = f"FROM (SELECT {int(points) - 1} AS g) AS last"
        conn.execute(Columns(conn, "latest_metrics").insert(last, last_source))
        # What autovacuum does within a minute of this fill on either server (10M new rows pass
        # PostgreSQL's default insert threshold on a fresh table, and mlgrid's migration 0006
        # sets one of 1M rows whatever the table's size): the read is timed on the table as a
        # running service has it, not in the minute after a bulk insert (docs/benchmarks.md).
        conn.execute("VACUUM (ANALYZE) metrics")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
