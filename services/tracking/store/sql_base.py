"""What every part of the SQL tracking store shares: the engine, dialect helpers, row → proto."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.dialects import postgresql, sqlite

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist
from mlgrid_services.common.sql import write_transaction

from . import schema as t

#: RunStatus numbers ↔ the names stored in runs.status (MLflow stores names too, and search
#: compares ``attributes.status = 'FINISHED'``).
STATUS_NAMES = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
STATUS_NUMBERS = {name: number for number, name in STATUS_NAMES.items()}

_RUN_INFO_COLUMNS = (
    t.runs.c.run_uuid,
    t.runs.c.name,
    t.runs.c.experiment_id,
    t.runs.c.user_id,
    t.runs.c.status,
    t.runs.c.start_time,
    t.runs.c.end_time,
    t.runs.c.artifact_uri,
    t.runs.c.lifecycle_stage,
)


def now_ms() -> int:
    return int(time.time() * 1000)


def run_info_from_row(row: Any) -> tracking_pb2.RunInfo:
    info = tracking_pb2.RunInfo(
        run_id=row[0],
        run_name=row[1],
        experiment_id=str(row[2]),
        user_id=row[3],
        status=STATUS_NUMBERS.get(row[4], 0),  # type: ignore[arg-type]
        start_time=row[5],
        artifact_uri=row[7],
        lifecycle_stage=row[8],
    )
    if row[6] is not None:
        info.end_time = row[6]
    return info


def metric_value(value: float, is_nan: bool) -> float:
    return math.nan if is_nan else value


def parse_experiment_id(experiment_id: str) -> int:
    """The integer key of an experiment id; ResourceDoesNotExist for ids this store never made."""
    try:
        number = int(experiment_id)
    except (TypeError, ValueError):
        number = -1
    if number < 0 or number > 2**31 - 1 or str(number) != experiment_id:
        raise ResourceDoesNotExist(f"No experiment with id {experiment_id!r}")
    return number


class SqlStoreBase:
    """Engine, dialect-specific statements and the checks every write starts with."""

    engine: Engine
    default_artifact_root: str

    def __init__(self, engine: Engine, default_artifact_root: str) -> None:
        self.engine = engine
        self.default_artifact_root = default_artifact_root.rstrip("/")
        self.dialect = engine.dialect.name
        self._insert: Callable[..., Any] = (
            postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        )

    run_info_columns = _RUN_INFO_COLUMNS

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with write_transaction(self.engine) as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    # ------------------------------------------------------------------ checks

    _run_state = sa.select(t.runs.c.lifecycle_stage).where(
        t.runs.c.run_uuid == sa.bindparam("run_id")
    )

    def _check_run_writable(self, conn: Connection, run_id: str) -> None:
        """Raises unless the run exists and is active. A run of a deleted experiment is deleted
        with it, so the run's own stage is enough (one indexed lookup per write)."""
        stage = conn.execute(self._run_state, {"run_id": run_id}).scalar()
        if stage is None:
            raise ResourceDoesNotExist(f"Run {run_id!r} not found")
        if stage != t.ACTIVE:
            raise InvalidParameterValue(
                f"The run {run_id} must be in the 'active' state to be changed; its current "
                f"state is {stage!r}"
            )

    def _check_run_exists(self, conn: Connection, run_id: str) -> str:
        stage = conn.execute(self._run_state, {"run_id": run_id}).scalar()
        if stage is None:
            raise ResourceDoesNotExist(f"Run {run_id!r} not found")
        return str(stage)

    def _experiment_stage(self, conn: Connection, experiment_id: int) -> str:
        stage = conn.execute(
            sa.select(t.experiments.c.lifecycle_stage).where(
                t.experiments.c.experiment_id == experiment_id
            )
        ).scalar()
        if stage is None:
            raise ResourceDoesNotExist(f"No experiment with id {experiment_id!r}")
        return str(stage)

    # --------------------------------------------------------------- bulk reads

    def _run_data(self, conn: Connection, run_ids: list[str]) -> dict[str, tracking_pb2.Run]:
        """Runs (info, params, tags, latest metrics) of ``run_ids`` in four queries."""
        runs: dict[str, tracking_pb2.Run] = {}
        if not run_ids:
            return runs
        ids = sa.bindparam("ids", expanding=True)
        for row in conn.execute(
            sa.select(*_RUN_INFO_COLUMNS).where(t.runs.c.run_uuid.in_(ids)), {"ids": run_ids}
        ):
            runs[row[0]] = tracking_pb2.Run(info=run_info_from_row(row))
        for run_uuid, key, value in conn.execute(
            sa.select(t.params.c.run_uuid, t.params.c.key, t.params.c.value).where(
                t.params.c.run_uuid.in_(ids)
            ),
            {"ids": run_ids},
        ):
            runs[run_uuid].data.params.add(key=key, value=value)
        for run_uuid, key, value in conn.execute(
            sa.select(t.tags.c.run_uuid, t.tags.c.key, t.tags.c.value).where(
                t.tags.c.run_uuid.in_(ids)
            ),
            {"ids": run_ids},
        ):
            runs[run_uuid].data.tags.add(key=key, value=value)
        lm = t.latest_metrics.c
        for run_uuid, key, value, is_nan, timestamp, step in conn.execute(
            sa.select(lm.run_uuid, lm.key, lm.value, lm.is_nan, lm.timestamp, lm.step).where(
                lm.run_uuid.in_(ids)
            ),
            {"ids": run_ids},
        ):
            runs[run_uuid].data.metrics.add(
                key=key, value=math.nan if is_nan else value, timestamp=timestamp, step=step
            )
        return runs

    def _run_inputs(self, conn: Connection, run_id: str) -> list[tracking_pb2.DatasetInput]:
        d = t.datasets.c
        inputs: dict[str, tracking_pb2.DatasetInput] = {}
        rows = conn.execute(
            sa.select(
                d.dataset_uuid, d.name, d.digest, d.source_type, d.source, d.schema, d.profile
            )
            .join(t.run_inputs, t.run_inputs.c.dataset_uuid == d.dataset_uuid)
            .where(t.run_inputs.c.run_uuid == run_id)
            .order_by(d.name, d.digest)
        )
        for uuid, name, digest, source_type, source, schema_, profile in rows:
            inputs[uuid] = tracking_pb2.DatasetInput(
                dataset=tracking_pb2.Dataset(
                    name=name,
                    digest=digest,
                    source_type=source_type,
                    source=source,
                    schema=schema_,
                    profile=profile,
                )
            )
        tag_rows = conn.execute(
            sa.select(
                t.run_input_tags.c.dataset_uuid, t.run_input_tags.c.key, t.run_input_tags.c.value
            )
            .where(t.run_input_tags.c.run_uuid == run_id)
            .order_by(t.run_input_tags.c.key)
        )
        for uuid, key, value in tag_rows:
            if uuid in inputs:
                inputs[uuid].tags.append(common_pb2.Tag(key=key, value=value))
        return list(inputs.values())
