"""MLflow 3's logged models in the SQL tracking store: create, read, finalize, delete, tags,
params, linked metrics, and runs' model outputs and inputs. Search is in
sql_logged_model_search.py."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.context.tags import MLFLOW_MODEL_VERSIONS
from mlgrid.exceptions import InvalidParameterValue, ResourceDoesNotExist

from . import logged_model_schema as lm
from . import schema as t
from .sql_base import SqlStoreBase, now_ms, parse_experiment_id

_M = lm.logged_models.c
_MODEL_COLUMNS = (
    _M.model_id,
    _M.experiment_id,
    _M.name,
    _M.artifact_location,
    _M.creation_timestamp_ms,
    _M.last_updated_timestamp_ms,
    _M.status,
    _M.model_type,
    _M.source_run_id,
    _M.status_message,
)
#: LoggedModelInfo.registrations is read from MLflow's tag listing the registered versions.
MODEL_VERSIONS_TAG = MLFLOW_MODEL_VERSIONS


def model_not_found(model_id: str) -> ResourceDoesNotExist:
    return ResourceDoesNotExist(f"Logged model with ID {model_id[:100]!r} not found")


def _registrations(info: tracking_pb2.LoggedModelInfo, value: str) -> None:
    try:
        versions = json.loads(value)
    except ValueError:
        return  # a hand-set tag that is not MLflow's JSON: no registrations to show
    if not isinstance(versions, list):
        return
    # MLflow's server writes the version as a number and its client appends it again as text:
    # one registration each, however written.
    seen: set[tuple[str, str]] = set()
    for item in versions:
        if isinstance(item, dict) and "name" in item and "version" in item:
            entry = (str(item["name"]), str(item["version"]))
            if entry not in seen:
                seen.add(entry)
                info.registrations.add(name=entry[0], version=entry[1])


def load_models(conn: Connection, model_ids: Sequence[str]) -> list[tracking_pb2.LoggedModel]:
    """The models ``model_ids`` (in that order; unknown ids skipped) with tags, params and
    metrics: four queries whatever the number of models."""
    if not model_ids:
        return []
    rows = conn.execute(sa.select(*_MODEL_COLUMNS).where(_M.model_id.in_(list(model_ids))))
    found: dict[str, tracking_pb2.LoggedModel] = {}
    for row in rows:
        model = tracking_pb2.LoggedModel()
        info = model.info
        info.model_id = row.model_id
        info.experiment_id = str(row.experiment_id)
        info.name = row.name
        info.artifact_uri = row.artifact_location
        info.creation_timestamp_ms = row.creation_timestamp_ms
        info.last_updated_timestamp_ms = row.last_updated_timestamp_ms
        info.status = row.status
        info.model_type = row.model_type
        info.source_run_id = row.source_run_id
        info.status_message = row.status_message
        found[row.model_id] = model
    ids = list(found)
    if not ids:
        return []
    tags, params, metrics = (
        lm.logged_model_tags.c,
        lm.logged_model_params.c,
        lm.logged_model_metrics.c,
    )
    for model_id, key, value in conn.execute(
        sa.select(tags.model_id, tags.key, tags.value)
        .where(tags.model_id.in_(ids))
        .order_by(tags.model_id, tags.key)
    ):
        info = found[model_id].info
        info.tags.add(key=key, value=value)
        if key == MODEL_VERSIONS_TAG:
            _registrations(info, value)
    for model_id, key, value in conn.execute(
        sa.select(params.model_id, params.key, params.value)
        .where(params.model_id.in_(ids))
        .order_by(params.model_id, params.key)
    ):
        found[model_id].data.params.add(key=key, value=value)
    for point in conn.execute(
        sa.select(
            metrics.model_id,
            metrics.key,
            metrics.value,
            metrics.is_nan,
            metrics.timestamp,
            metrics.step,
            metrics.run_uuid,
            metrics.dataset_name,
            metrics.dataset_digest,
        )
        .where(metrics.model_id.in_(ids))
        .order_by(metrics.model_id, metrics.key, metrics.step, metrics.timestamp)
    ):
        found[point.model_id].data.metrics.add(
            key=point.key,
            value=math.nan if point.is_nan else point.value,
            timestamp=point.timestamp,
            step=point.step,
            run_id=point.run_uuid,
            dataset_name=point.dataset_name,
            dataset_digest=point.dataset_digest,
            model_id=point.model_id,
        )
    return [found[model_id] for model_id in model_ids if model_id in found]


class LoggedModelsMixin(SqlStoreBase):
    # ------------------------------------------------------------------ helpers

    def _model_stage(self, conn: Connection, model_id: str) -> str:
        stage = conn.execute(sa.select(_M.lifecycle_stage).where(_M.model_id == model_id)).scalar()
        if stage is None:
            raise model_not_found(model_id)
        return str(stage)

    def _check_models_exist(self, conn: Connection, model_ids: set[str]) -> None:
        known = set(
            conn.execute(sa.select(_M.model_id).where(_M.model_id.in_(sorted(model_ids)))).scalars()
        )
        missing = sorted(model_ids - known)
        if missing:
            raise model_not_found(missing[0])

    def _one_model(self, conn: Connection, model_id: str) -> tracking_pb2.LoggedModel:
        models = load_models(conn, [model_id])
        if not models:
            raise model_not_found(model_id)
        return models[0]

    # ------------------------------------------------------------------ models

    def create_logged_model(
        self,
        experiment_id: str,
        name: str,
        source_run_id: str,
        model_type: str,
        params: Sequence[tracking_pb2.Param],
        tags: Sequence[common_pb2.Tag],
    ) -> tracking_pb2.LoggedModel:
        number = parse_experiment_id(experiment_id)
        model_id = f"m-{uuid.uuid4().hex}"
        with self._write() as conn:
            row = conn.execute(
                sa.select(t.experiments.c.artifact_location, t.experiments.c.lifecycle_stage).where(
                    t.experiments.c.experiment_id == number
                )
            ).first()
            if row is None:
                raise ResourceDoesNotExist(f"No experiment with id {experiment_id!r}")
            if row.lifecycle_stage != t.ACTIVE:
                raise InvalidParameterValue(
                    f"The experiment {experiment_id} must be in the 'active' state to create a "
                    f"logged model in it; its current state is {row.lifecycle_stage!r}"
                )
            created = now_ms()
            conn.execute(
                lm.logged_models.insert().values(
                    model_id=model_id,
                    experiment_id=number,
                    name=name,
                    artifact_location=f"{row.artifact_location.rstrip('/')}/models/{model_id}"
                    "/artifacts",
                    creation_timestamp_ms=created,
                    last_updated_timestamp_ms=created,
                    status=tracking_pb2.LOGGED_MODEL_STATUS_PENDING,
                    lifecycle_stage=t.ACTIVE,
                    model_type=model_type,
                    source_run_id=source_run_id,
                    status_message="",
                )
            )
            self._insert_rows(
                conn,
                lm.logged_model_params.insert(),
                [{"model_id": model_id, "key": p.key, "value": p.value} for p in params],
            )
            latest = {tag.key: tag.value for tag in tags}
            self._insert_rows(
                conn,
                lm.logged_model_tags.insert(),
                [{"model_id": model_id, "key": k, "value": v} for k, v in latest.items()],
            )
            return self._one_model(conn, model_id)

    def get_logged_model(self, model_id: str, allow_deleted: bool) -> tracking_pb2.LoggedModel:
        with self._read() as conn:
            model = self._one_model(conn, model_id)
            if not allow_deleted and self._model_stage(conn, model_id) != t.ACTIVE:
                raise model_not_found(model_id)
            return model

    def finalize_logged_model(self, model_id: str, status: int) -> tracking_pb2.LoggedModel:
        with self._write() as conn:
            updated = conn.execute(
                lm.logged_models.update()
                .where(_M.model_id == model_id)
                .values(status=status, last_updated_timestamp_ms=now_ms())
            ).rowcount
            if not updated:
                raise model_not_found(model_id)
            return self._one_model(conn, model_id)

    def delete_logged_model(self, model_id: str) -> None:
        with self._write() as conn:
            updated = conn.execute(
                lm.logged_models.update()
                .where(_M.model_id == model_id)
                .values(lifecycle_stage=t.DELETED, last_updated_timestamp_ms=now_ms())
            ).rowcount
            if not updated:
                raise model_not_found(model_id)

    # ---------------------------------------------------------- tags and params

    def set_logged_model_tags(
        self, model_id: str, tags: Sequence[common_pb2.Tag]
    ) -> tracking_pb2.LoggedModel:
        latest = {tag.key: tag.value for tag in tags}
        with self._write() as conn:
            self._model_stage(conn, model_id)
            if latest:
                statement = self._upsert(lm.logged_model_tags, ("model_id", "key"), ("value",))
                self._insert_rows(
                    conn,
                    statement,
                    [{"model_id": model_id, "key": k, "value": v} for k, v in latest.items()],
                )
            return self._one_model(conn, model_id)

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        c = lm.logged_model_tags.c
        with self._write() as conn:
            self._model_stage(conn, model_id)
            deleted = conn.execute(
                lm.logged_model_tags.delete().where(c.model_id == model_id, c.key == key)
            ).rowcount
            if not deleted:
                raise ResourceDoesNotExist(
                    f"No tag with key {key[:250]!r} on logged model {model_id!r}"
                )

    def log_logged_model_params(self, model_id: str, params: Sequence[tracking_pb2.Param]) -> None:
        c = lm.logged_model_params.c
        with self._write() as conn:
            self._model_stage(conn, model_id)
            if not params:
                return
            wanted = {p.key: p.value for p in params}
            stored = dict(
                conn.execute(
                    sa.select(c.key, c.value).where(c.model_id == model_id, c.key.in_(list(wanted)))
                ).all()
            )
            for key, value in wanted.items():
                if key in stored and stored[key] != value:
                    raise InvalidParameterValue(
                        f"Changing param values is not allowed. Param with key={key!r} was "
                        f"already logged with value={stored[key][:200]!r} for logged model "
                        f"{model_id!r}. Attempted logging new value {value[:200]!r}."
                    )
            statement = self._insert_ignore(lm.logged_model_params)
            self._insert_rows(
                conn,
                statement,
                [
                    {"model_id": model_id, "key": k, "value": v}
                    for k, v in wanted.items()
                    if k not in stored
                ],
            )

    # ------------------------------------------------------------- run links

    def log_logged_model_metrics(self, run_id: str, metrics: Sequence[tracking_pb2.Metric]) -> None:
        if not metrics:
            return
        rows: dict[tuple[Any, ...], dict[str, Any]] = {}
        for m in metrics:
            is_nan = math.isnan(m.value)
            row = {
                "model_id": m.model_id,
                "key": m.key,
                "step": m.step,
                "timestamp": m.timestamp,
                "run_uuid": run_id,
                "dataset_name": m.dataset_name,
                "dataset_digest": m.dataset_digest,
                "value": 0.0 if is_nan else m.value,
                "is_nan": is_nan,
            }
            # The primary key: the first of two points that share it wins, as in the table.
            identity = tuple(row[k] for k in ("model_id", "key", "step", "timestamp"))
            rows.setdefault((*identity, m.dataset_name, m.dataset_digest), row)
        with self._write() as conn:
            self._check_run_writable(conn, run_id)
            self._check_models_exist(conn, {m.model_id for m in metrics})
            statement = self._insert_ignore(lm.logged_model_metrics)
            self._insert_rows(conn, statement, list(rows.values()))

    def log_outputs(self, run_id: str, models: Sequence[tracking_pb2.ModelOutput]) -> None:
        if not models:
            return
        steps = {m.model_id: m.step for m in models}
        with self._write() as conn:
            self._check_run_writable(conn, run_id)
            self._check_models_exist(conn, set(steps))
            statement = self._upsert(lm.run_model_outputs, ("run_uuid", "model_id"), ("step",))
            self._insert_rows(
                conn,
                statement,
                [{"run_uuid": run_id, "model_id": k, "step": s} for k, s in steps.items()],
            )

    def log_model_inputs(self, run_id: str, models: Sequence[tracking_pb2.ModelInput]) -> None:
        if not models:
            return
        with self._write() as conn:
            self._check_run_writable(conn, run_id)
            statement = self._insert_ignore(lm.run_model_inputs)
            self._insert_rows(
                conn,
                statement,
                [
                    {"run_uuid": run_id, "model_id": m}
                    for m in dict.fromkeys(x.model_id for x in models)
                ],
            )

    def _add_model_links(self, conn: Connection, runs: Sequence[tracking_pb2.Run]) -> None:
        """Fills each run's model outputs and model inputs (two queries for any number)."""
        by_id = {run.info.run_id: run for run in runs}
        if not by_id:
            return
        out, inp = lm.run_model_outputs.c, lm.run_model_inputs.c
        for run_id, model_id, step in conn.execute(
            sa.select(out.run_uuid, out.model_id, out.step)
            .where(out.run_uuid.in_(list(by_id)))
            .order_by(out.run_uuid, out.step, out.model_id)
        ):
            by_id[run_id].outputs.model_outputs.add(model_id=model_id, step=step)
        for run_id, model_id in conn.execute(
            sa.select(inp.run_uuid, inp.model_id)
            .where(inp.run_uuid.in_(list(by_id)))
            .order_by(inp.run_uuid, inp.model_id)
        ):
            by_id[run_id].inputs.model_inputs.add(model_id=model_id)

    # search_runs stays one query per page (tests/tracking/test_store_search.py): its page
    # statement reads the model outputs and inputs itself (RunReadsMixin._page_statement).
    def get_run(self, run_id: str) -> tracking_pb2.Run:
        run: tracking_pb2.Run = super().get_run(run_id)  # type: ignore[misc]
        with self._read() as conn:
            self._add_model_links(conn, [run])
        return run
