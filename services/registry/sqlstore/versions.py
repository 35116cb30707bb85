"""Model-version operations of the SQL registry store (create, search, stages, tags)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.registry.v1 import registry_pb2
from mlgrid.exceptions import InvalidParameterValue
from mlgrid.limits import SEARCH_VERSIONS_DEFAULT
from mlgrid.registry.store import (
    STAGE_ARCHIVED,
    STAGE_NONE,
    STAGE_PRODUCTION,
    STAGE_STAGING,
    Page,
)
from mlgrid.store.paging import decode_page_token, encode_page_token

from ..search import VERSION_GRAMMAR, OrderBy, parse_filter, parse_order_by
from . import pgfast
from . import queries as q
from .base import READY, SqlStoreBase, model_not_found, now_ms, version_not_found
from .schema import model_version_tags, model_versions, registered_model_aliases, registered_models


class VersionOperations(SqlStoreBase):
    """create_model_version and everything else that addresses one version."""

    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str = "",
        tags: Sequence[tuple[str, str]] = (),
        run_link: str = "",
        description: str = "",
        user_id: str = "",
        storage_location: str = "",
        model_id: str = "",
    ) -> registry_pb2.ModelVersion:
        when = now_ms()
        unique_tags = dict(tags)
        columns = {
            "creation_time": when,
            "last_updated_time": when,
            "description": description,
            "user_id": user_id,
            "current_stage": STAGE_NONE,
            "source": source,
            "storage_location": storage_location,
            "run_id": run_id,
            "run_link": run_link,
            "status": READY,
            "status_message": "",
            "logged_model_id": model_id,
        }
        create = self._create_version_pg if self.pg is not None else self._create_version_sql
        version = create(name, columns, unique_tags)
        # Everything is known: answer without reading the rows back.
        return registry_pb2.ModelVersion(
            name=name,
            version=str(version),
            creation_timestamp=when,
            last_updated_timestamp=when,
            user_id=user_id,
            current_stage=STAGE_NONE,
            description=description,
            source=source,
            run_id=run_id,
            status=READY,
            tags=[common_pb2.Tag(key=k, value=v) for k, v in sorted(unique_tags.items())],
            run_link=run_link,
            model_id=model_id,
        )

    def _create_version_pg(self, name: str, columns: dict[str, Any], tags: dict[str, str]) -> int:
        """One statement (pgfast.CREATE_VERSION): one round trip instead of five."""
        assert self.pg is not None
        params = {"name": name, "tag_keys": list(tags), "tag_values": list(tags.values())}
        with self.cache.writing():
            row = self.pg.fetchone(pgfast.CREATE_VERSION, params | columns, idempotent=False)
        if row is None:
            raise model_not_found(name)
        return int(row[0])

    def _create_version_sql(self, name: str, columns: dict[str, Any], tags: dict[str, str]) -> int:
        with self._write() as conn:
            when = columns["last_updated_time"]
            bumped = q.take_next_version(conn, name, when)
            if bumped is None:
                raise model_not_found(name)
            model_id, version = bumped
            conn.execute(
                insert(model_versions).values(model_id=model_id, version=version, **columns)
            )
            if tags:
                conn.execute(
                    insert(model_version_tags),
                    [
                        {"model_id": model_id, "version": version, "key": k, "value": v}
                        for k, v in tags.items()
                    ],
                )
        return int(version)

    def get_model_version(self, name: str, version: int) -> registry_pb2.ModelVersion:
        if self.pg is not None:
            return self._fast_version_read(
                ("version", name, version),
                pgfast.VERSION_BY_NUMBER,
                {"name": name, "version": version},
                lambda: version_not_found(name, version),
            )
        with self.engine.connect() as conn:
            return self._read_version(conn, name, version)

    def update_model_version(
        self, name: str, version: int, description: str
    ) -> registry_pb2.ModelVersion:
        with self._write() as conn:
            model_id = self._require_version(conn, name, version)
            conn.execute(
                update(model_versions)
                .where(model_versions.c.model_id == model_id, model_versions.c.version == version)
                .values(description=description, last_updated_time=now_ms())
            )
            return self._read_version(conn, name, version)

    def delete_model_version(self, name: str, version: int) -> None:
        with self._write() as conn:
            model_id = self._require_version(conn, name, version)
            for table in (registered_model_aliases, model_version_tags, model_versions):
                conn.execute(
                    delete(table).where(table.c.model_id == model_id, table.c.version == version)
                )
            self._touch_model(conn, model_id, now_ms())

    def search_model_versions(
        self,
        filter_string: str = "",
        max_results: int = SEARCH_VERSIONS_DEFAULT,
        order_by: Sequence[str] = (),
        page_token: str = "",
    ) -> Page:
        where = q.version_filter(parse_filter(filter_string, VERSION_GRAMMAR))
        columns = {
            "name": registered_models.c.name,
            "version_number": model_versions.c.version,
            "creation_timestamp": model_versions.c.creation_time,
            "last_updated_timestamp": model_versions.c.last_updated_time,
        }
        ordering = self._ordering(
            parse_order_by(order_by, VERSION_GRAMMAR),
            columns,
            [OrderBy("name", True), OrderBy("version_number", False)],
        )
        offset = decode_page_token(page_token, "model versions")
        query = (
            q.version_query().where(where).order_by(*ordering).offset(offset).limit(max_results + 1)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            items = q.load_versions(conn, rows[:max_results])
        token = (
            encode_page_token(offset + max_results, "model versions")
            if len(rows) > max_results
            else ""
        )
        return Page(items, token)

    def transition_model_version_stage(
        self, name: str, version: int, stage: str, archive_existing_versions: bool
    ) -> registry_pb2.ModelVersion:
        if archive_existing_versions and stage not in (STAGE_STAGING, STAGE_PRODUCTION):
            raise InvalidParameterValue(
                f"archive_existing_versions is only allowed when moving to {STAGE_STAGING} or "
                f"{STAGE_PRODUCTION}, not to {stage!r}"
            )
        when = now_ms()
        with self._write() as conn:
            model_id = self._require_version(conn, name, version)
            if archive_existing_versions:
                conn.execute(
                    update(model_versions)
                    .where(
                        model_versions.c.model_id == model_id,
                        model_versions.c.current_stage == stage,
                        model_versions.c.version != version,
                    )
                    .values(current_stage=STAGE_ARCHIVED, last_updated_time=when)
                )
            conn.execute(
                update(model_versions)
                .where(model_versions.c.model_id == model_id, model_versions.c.version == version)
                .values(current_stage=stage, last_updated_time=when)
            )
            self._touch_model(conn, model_id, when)
            return self._read_version(conn, name, version)

    def set_model_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        with self._write() as conn:
            model_id = self._require_version(conn, name, version)
            match = (
                model_version_tags.c.model_id == model_id,
                model_version_tags.c.version == version,
                model_version_tags.c.key == key,
            )
            if not conn.execute(
                update(model_version_tags).where(*match).values(value=value)
            ).rowcount:
                conn.execute(
                    insert(model_version_tags).values(
                        model_id=model_id, version=version, key=key, value=value
                    )
                )

    def delete_model_version_tag(self, name: str, version: int, key: str) -> None:
        with self._write() as conn:
            model_id = self._require_version(conn, name, version)
            # A missing tag is not an error (MLflow's registry is idempotent here).
            conn.execute(
                delete(model_version_tags).where(
                    model_version_tags.c.model_id == model_id,
                    model_version_tags.c.version == version,
                    model_version_tags.c.key == key,
                )
            )

    def get_model_version_download_uri(self, name: str, version: int) -> str:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(model_versions.c.source, model_versions.c.storage_location)
                .join_from(model_versions, registered_models)
                .where(registered_models.c.name == name, model_versions.c.version == version)
            ).first()
            if row is None:
                self._model_id(conn, name)
                raise version_not_found(name, version)
            return str(row.storage_location or row.source)
