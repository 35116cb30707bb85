"""Experiments in the SQL tracking store."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.tracking.v1 import tracking_pb2
from mlgrid.exceptions import (
    InvalidParameterValue,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
)
from mlgrid.store.paging import decode_page_token, encode_page_token
from mlgrid.store.search_filter import check_experiment_filter, parse_experiment_order_by

from . import schema as t
from .rows import EXPERIMENT_COLUMNS, experiment_from_row
from .sql_base import SqlStoreBase, now_ms, parse_experiment_id
from .sql_filters import compile_experiment_filter, lifecycle_condition

_E = t.experiments.c
_ORDER_COLUMNS = {
    "name": _E.name,
    "experiment_id": _E.experiment_id,
    "creation_time": _E.creation_time,
    "last_update_time": _E.last_update_time,
}


def _name_taken(name: str) -> ResourceAlreadyExists:
    return ResourceAlreadyExists(
        f"Experiment {name!r} already exists (names are unique, also against deleted "
        "experiments; restore or rename the existing one, or choose another name)"
    )


class ExperimentsMixin(SqlStoreBase):
    def _experiments_with_tags(
        self, conn: Connection, rows: Sequence[sa.Row]
    ) -> list[tracking_pb2.Experiment]:
        found = {}
        for row in rows:
            experiment = experiment_from_row(row)
            found[int(experiment.experiment_id)] = experiment
        if found:
            tag_rows = conn.execute(
                sa.select(
                    t.experiment_tags.c.experiment_id,
                    t.experiment_tags.c.key,
                    t.experiment_tags.c.value,
                )
                .where(t.experiment_tags.c.experiment_id.in_(list(found)))
                .order_by(t.experiment_tags.c.key)
            )
            for experiment_id, key, value in tag_rows:
                found[experiment_id].tags.add(key=key, value=value)
        return list(found.values())

    def _fix_default_location(self) -> None:
        """The migration cannot know the artifact root: give experiment 0 its location."""
        with self._write() as conn:
            conn.execute(
                t.experiments.update()
                .where(_E.experiment_id == 0, _E.artifact_location == "")
                .values(artifact_location=f"{self.default_artifact_root}/0")
            )

    def create_experiment(
        self, name: str, artifact_location: str | None, tags: Sequence[common_pb2.Tag]
    ) -> str:
        now = now_ms()
        try:
            with self._write() as conn:
                if conn.execute(sa.select(_E.experiment_id).where(_E.name == name)).first():
                    raise _name_taken(name)
                experiment_id = conn.execute(
                    t.experiments.insert()
                    .values(
                        name=name,
                        artifact_location=artifact_location or "",
                        lifecycle_stage=t.ACTIVE,
                        creation_time=now,
                        last_update_time=now,
                    )
                    .returning(_E.experiment_id)
                ).scalar_one()
                if not artifact_location:
                    conn.execute(
                        t.experiments.update()
                        .where(_E.experiment_id == experiment_id)
                        .values(artifact_location=f"{self.default_artifact_root}/{experiment_id}")
                    )
                if tags:
                    unique = {tag.key: tag.value for tag in tags}
                    self._insert_rows(
                        conn,
                        t.experiment_tags.insert(),
                        [
                            {"experiment_id": experiment_id, "key": k, "value": v}
                            for k, v in unique.items()
                        ],
                    )
        except IntegrityError as exc:
            # A concurrent creator committed the same name between our check and insert.
            raise _name_taken(name) from exc
        return str(experiment_id)

    def get_experiment(self, experiment_id: str) -> tracking_pb2.Experiment:
        number = parse_experiment_id(experiment_id)
        with self._read() as conn:
            rows = conn.execute(
                sa.select(*EXPERIMENT_COLUMNS).where(_E.experiment_id == number)
            ).all()
            if not rows:
                raise ResourceDoesNotExist(f"No experiment with id {experiment_id!r}")
            return self._experiments_with_tags(conn, rows)[0]

    def get_experiment_by_name(self, name: str) -> tracking_pb2.Experiment | None:
        with self._read() as conn:
            # Names are unique; ordering keeps "prefer the active one" true for data imported
            # from a store where they were not.
            rows = conn.execute(
                sa.select(*EXPERIMENT_COLUMNS)
                .where(_E.name == name)
                .order_by(sa.case((_E.lifecycle_stage == t.ACTIVE, 0), else_=1))
                .limit(1)
            ).all()
            return self._experiments_with_tags(conn, rows)[0] if rows else None

    def search_experiments(
        self,
        view_type: int,
        max_results: int,
        filter_string: str,
        order_by: Sequence[str],
        page_token: str,
    ) -> tuple[list[tracking_pb2.Experiment], str]:
        tree = check_experiment_filter(filter_string)
        clauses = parse_experiment_order_by(list(order_by))
        offset = decode_page_token(page_token, "experiments")
        query = sa.select(*EXPERIMENT_COLUMNS).where(
            lifecycle_condition(_E.lifecycle_stage, view_type)
        )
        if tree is not None:
            query = query.where(compile_experiment_filter(tree))
        ordering = []
        seen = set()
        for clause in clauses:
            column = _ORDER_COLUMNS[clause.key]
            ordering.append(column.asc() if clause.ascending else column.desc())
            seen.add(clause.key)
        if "creation_time" not in seen:
            ordering.append(_E.creation_time.desc())
        if "experiment_id" not in seen:
            ordering.append(_E.experiment_id.asc())
        query = query.order_by(*ordering).offset(offset).limit(max_results + 1)
        with self._read() as conn:
            rows = conn.execute(query).all()
            more = len(rows) > max_results
            experiments = self._experiments_with_tags(conn, rows[:max_results])
        token = encode_page_token(offset + max_results, "experiments") if more else ""
        return experiments, token

    def _require_active_experiment(self, conn: Connection, number: int) -> None:
        stage = self._experiment_stage(conn, number)
        if stage != t.ACTIVE:
            raise InvalidParameterValue(
                f"The experiment {number} must be in the 'active' state to be changed; its "
                f"current state is {stage!r} (restore it first)"
            )

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        number = parse_experiment_id(experiment_id)
        try:
            with self._write() as conn:
                self._require_active_experiment(conn, number)
                other = conn.execute(
                    sa.select(_E.experiment_id).where(_E.name == new_name)
                ).scalar()
                if other is not None and other != number:
                    raise _name_taken(new_name)
                conn.execute(
                    t.experiments.update()
                    .where(_E.experiment_id == number)
                    .values(name=new_name, last_update_time=now_ms())
                )
        except IntegrityError as exc:
            raise _name_taken(new_name) from exc

    def delete_experiment(self, experiment_id: str) -> None:
        number = parse_experiment_id(experiment_id)
        if number == 0:
            raise InvalidParameterValue(
                "Invalid experiment_id '0': the Default experiment cannot be deleted"
            )
        now = now_ms()
        with self._write() as conn:
            self._require_active_experiment(conn, number)
            conn.execute(
                t.experiments.update()
                .where(_E.experiment_id == number)
                .values(lifecycle_stage=t.DELETED, last_update_time=now)
            )
            conn.execute(
                t.runs.update()
                .where(t.runs.c.experiment_id == number, t.runs.c.lifecycle_stage == t.ACTIVE)
                .values(lifecycle_stage=t.DELETED, deleted_with_experiment=True)
            )

    def restore_experiment(self, experiment_id: str) -> None:
        number = parse_experiment_id(experiment_id)
        with self._write() as conn:
            stage = self._experiment_stage(conn, number)
            if stage != t.DELETED:
                raise InvalidParameterValue(
                    f"Cannot restore experiment {experiment_id}: it is {stage!r}, not deleted"
                )
            conn.execute(
                t.experiments.update()
                .where(_E.experiment_id == number)
                .values(lifecycle_stage=t.ACTIVE, last_update_time=now_ms())
            )
            conn.execute(
                t.runs.update()
                .where(
                    t.runs.c.experiment_id == number,
                    t.runs.c.deleted_with_experiment.is_(True),
                )
                .values(lifecycle_stage=t.ACTIVE, deleted_with_experiment=False)
            )

    def set_experiment_tag(self, experiment_id: str, tag: common_pb2.Tag) -> None:
        number = parse_experiment_id(experiment_id)
        with self._write() as conn:
            self._require_active_experiment(conn, number)
            conn.execute(
                self._upsert(t.experiment_tags, ("experiment_id", "key"), ("value",)),
                {"experiment_id": number, "key": tag.key, "value": tag.value},
            )
            conn.execute(
                t.experiments.update()
                .where(_E.experiment_id == number)
                .values(last_update_time=now_ms())
            )

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        number = parse_experiment_id(experiment_id)
        with self._write() as conn:
            self._require_active_experiment(conn, number)
            deleted = conn.execute(
                t.experiment_tags.delete().where(
                    t.experiment_tags.c.experiment_id == number, t.experiment_tags.c.key == key
                )
            ).rowcount
            if not deleted:
                raise ResourceDoesNotExist(f"No tag with key {key!r} on experiment {experiment_id}")
