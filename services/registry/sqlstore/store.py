"""The SQL registry store (SQLite and PostgreSQL), implementing AbstractRegistryStore.

Version numbers come from a per-model counter bumped with one atomic
``UPDATE registered_models SET last_version = last_version + 1 ... RETURNING``: the row lock it
takes (PostgreSQL) or the write lock of BEGIN IMMEDIATE (SQLite) serialises concurrent creators
until commit, and a failed insert rolls the counter back, so numbers are unique and gap-free.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.registry.v1 import registry_pb2
from mlgrid.exceptions import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from mlgrid.registry.store import (
    SEARCH_MODELS_DEFAULT,
    SEARCH_VERSIONS_DEFAULT,
    STAGE_ARCHIVED,
    STAGE_NONE,
    STAGE_PRODUCTION,
    STAGE_STAGING,
    AbstractRegistryStore,
    Page,
)
from mlgrid_services.common.sql import make_engine, write_transaction

from .. import migrations
from ..search import MODEL_GRAMMAR, VERSION_GRAMMAR, OrderBy, parse_filter, parse_order_by
from . import queries as q
from .schema import (
    model_version_tags,
    model_versions,
    registered_model_aliases,
    registered_model_tags,
    registered_models,
)

READY = registry_pb2.MODEL_VERSION_STATUS_READY


def now_ms() -> int:
    return int(time.time() * 1000)


def _model_not_found(name: str) -> ResourceDoesNotExist:
    return ResourceDoesNotExist(f"Registered Model with name={name!r} not found")


def _version_not_found(name: str, version: int) -> ResourceDoesNotExist:
    return ResourceDoesNotExist(f"Model Version (name={name!r}, version={version}) not found")


class SqlRegistryStore(AbstractRegistryStore):
    """Registry store over SQLAlchemy; the schema is brought to head when the store opens."""

    def __init__(self, store_uri: str, *, migrate: bool = True) -> None:
        self.store_uri = store_uri
        self.engine = make_engine(store_uri)
        self.dialect = self.engine.dialect.name
        if migrate:
            migrations.upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # --- helpers -------------------------------------------------------------------------------

    def _model_id(self, conn: Connection, name: str) -> int:
        model_id = conn.execute(
            select(registered_models.c.id).where(registered_models.c.name == name)
        ).scalar()
        if model_id is None:
            raise _model_not_found(name)
        return int(model_id)

    def _require_version(self, conn: Connection, name: str, version: int) -> int:
        """The model id, once the version is known to exist."""
        model_id = self._model_id(conn, name)
        found = conn.execute(
            select(model_versions.c.version).where(
                model_versions.c.model_id == model_id, model_versions.c.version == version
            )
        ).scalar()
        if found is None:
            raise _version_not_found(name, version)
        return model_id

    def _touch_model(self, conn: Connection, model_id: int, when: int) -> None:
        conn.execute(
            update(registered_models)
            .where(registered_models.c.id == model_id)
            .values(last_updated_time=when)
        )

    def _read_model(self, conn: Connection, name: str) -> registry_pb2.RegisteredModel:
        rows = list(conn.execute(select(registered_models).where(registered_models.c.name == name)))
        if not rows:
            raise _model_not_found(name)
        return q.load_models(conn, rows)[0]

    def _read_version(self, conn: Connection, name: str, version: int) -> registry_pb2.ModelVersion:
        rows = list(
            conn.execute(
                q.version_query().where(
                    registered_models.c.name == name, model_versions.c.version == version
                )
            )
        )
        if not rows:
            self._model_id(conn, name)  # a missing model is reported as such
            raise _version_not_found(name, version)
        return q.load_versions(conn, rows)[0]

    # --- registered models -------------------------------------------------------------------

    def create_registered_model(
        self, name: str, tags: Sequence[tuple[str, str]] = (), description: str = ""
    ) -> registry_pb2.RegisteredModel:
        when = now_ms()
        try:
            with write_transaction(self.engine) as conn:
                model_id = conn.execute(
                    insert(registered_models)
                    .values(
                        name=name,
                        description=description,
                        creation_time=when,
                        last_updated_time=when,
                        last_version=0,
                    )
                    .returning(registered_models.c.id)
                ).scalar_one()
                if tags:
                    conn.execute(
                        insert(registered_model_tags),
                        [
                            {"model_id": model_id, "key": k, "value": v}
                            for k, v in dict(tags).items()
                        ],
                    )
                return self._read_model(conn, name)
        except IntegrityError:
            raise ResourceAlreadyExists(
                f"Registered Model (name={name!r}) already exists"
            ) from None

    def get_registered_model(self, name: str) -> registry_pb2.RegisteredModel:
        with self.engine.connect() as conn:
            return self._read_model(conn, name)

    def rename_registered_model(self, name: str, new_name: str) -> registry_pb2.RegisteredModel:
        try:
            with write_transaction(self.engine) as conn:
                model_id = self._model_id(conn, name)
                conn.execute(
                    update(registered_models)
                    .where(registered_models.c.id == model_id)
                    .values(name=new_name, last_updated_time=now_ms())
                )
                return self._read_model(conn, new_name)
        except IntegrityError:
            raise ResourceAlreadyExists(
                f"Registered Model (name={new_name!r}) already exists"
            ) from None

    def update_registered_model(self, name: str, description: str) -> registry_pb2.RegisteredModel:
        with write_transaction(self.engine) as conn:
            model_id = self._model_id(conn, name)
            conn.execute(
                update(registered_models)
                .where(registered_models.c.id == model_id)
                .values(description=description, last_updated_time=now_ms())
            )
            return self._read_model(conn, name)

    def delete_registered_model(self, name: str) -> None:
        # Children first, explicitly: the result must not depend on the FK cascade being on.
        with write_transaction(self.engine) as conn:
            model_id = self._model_id(conn, name)
            for table in (registered_model_aliases, model_version_tags, registered_model_tags):
                conn.execute(delete(table).where(table.c.model_id == model_id))
            conn.execute(delete(model_versions).where(model_versions.c.model_id == model_id))
            conn.execute(delete(registered_models).where(registered_models.c.id == model_id))

    def search_registered_models(
        self,
        filter_string: str = "",
        max_results: int = SEARCH_MODELS_DEFAULT,
        order_by: Sequence[str] = (),
        page_token: str = "",
    ) -> Page:
        where = q.model_filter(parse_filter(filter_string, MODEL_GRAMMAR))
        columns = {
            "name": registered_models.c.name,
            "creation_timestamp": registered_models.c.creation_time,
            "last_updated_timestamp": registered_models.c.last_updated_time,
        }
        ordering = self._ordering(
            parse_order_by(order_by, MODEL_GRAMMAR), columns, [OrderBy("name", True)]
        )
        offset = q.decode_page_token(page_token)
        query = (
            select(registered_models)
            .where(where)
            .order_by(*ordering)
            .offset(offset)
            .limit(max_results + 1)
        )
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))
            items = q.load_models(conn, rows[:max_results])
        token = q.encode_page_token(offset + max_results) if len(rows) > max_results else ""
        return Page(items, token)

    @staticmethod
    def _ordering(
        wanted: list[OrderBy], columns: dict[str, Any], tie_break: list[OrderBy]
    ) -> list[Any]:
        named = {o.key for o in wanted}
        clauses = []
        for o in [*wanted, *(t for t in tie_break if t.key not in named)]:
            column = columns[o.key]
            clauses.append(column.asc() if o.ascending else column.desc())
        return clauses

    def get_latest_versions(
        self, name: str, stages: Sequence[str] = ()
    ) -> list[registry_pb2.ModelVersion]:
        with self.engine.connect() as conn:
            model_id = self._model_id(conn, name)
            rows = q.latest_version_rows(conn, [model_id], stages)
            return q.load_versions(conn, rows)

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        with write_transaction(self.engine) as conn:
            model_id = self._model_id(conn, name)
            changed = conn.execute(
                update(registered_model_tags)
                .where(
                    registered_model_tags.c.model_id == model_id, registered_model_tags.c.key == key
                )
                .values(value=value)
            ).rowcount
            if not changed:
                conn.execute(
                    insert(registered_model_tags).values(model_id=model_id, key=key, value=value)
                )

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        with write_transaction(self.engine) as conn:
            model_id = self._model_id(conn, name)
            gone = conn.execute(
                delete(registered_model_tags).where(
                    registered_model_tags.c.model_id == model_id, registered_model_tags.c.key == key
                )
            ).rowcount
            if not gone:
                raise ResourceDoesNotExist(f"No tag with key={key!r} on registered model {name!r}")

    # --- model versions ----------------------------------------------------------------------

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
    ) -> registry_pb2.ModelVersion:
        when = now_ms()
        with write_transaction(self.engine) as conn:
            bumped = conn.execute(
                update(registered_models)
                .where(registered_models.c.name == name)
                .values(last_version=registered_models.c.last_version + 1, last_updated_time=when)
                .returning(registered_models.c.id, registered_models.c.last_version)
            ).first()
            if bumped is None:
                raise _model_not_found(name)
            model_id, version = bumped
            conn.execute(
                insert(model_versions).values(
                    model_id=model_id,
                    version=version,
                    creation_time=when,
                    last_updated_time=when,
                    description=description,
                    user_id=user_id,
                    current_stage=STAGE_NONE,
                    source=source,
                    storage_location=storage_location,
                    run_id=run_id,
                    run_link=run_link,
                    status=READY,
                    status_message="",
                )
            )
            unique_tags = dict(tags)
            if unique_tags:
                conn.execute(
                    insert(model_version_tags),
                    [
                        {"model_id": model_id, "version": version, "key": k, "value": v}
                        for k, v in unique_tags.items()
                    ],
                )
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
        )

    def get_model_version(self, name: str, version: int) -> registry_pb2.ModelVersion:
        with self.engine.connect() as conn:
            return self._read_version(conn, name, version)

    def update_model_version(
        self, name: str, version: int, description: str
    ) -> registry_pb2.ModelVersion:
        with write_transaction(self.engine) as conn:
            model_id = self._require_version(conn, name, version)
            conn.execute(
                update(model_versions)
                .where(model_versions.c.model_id == model_id, model_versions.c.version == version)
                .values(description=description, last_updated_time=now_ms())
            )
            return self._read_version(conn, name, version)

    def delete_model_version(self, name: str, version: int) -> None:
        with write_transaction(self.engine) as conn:
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
        offset = q.decode_page_token(page_token)
        query = (
            q.version_query().where(where).order_by(*ordering).offset(offset).limit(max_results + 1)
        )
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))
            items = q.load_versions(conn, rows[:max_results])
        token = q.encode_page_token(offset + max_results) if len(rows) > max_results else ""
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
        with write_transaction(self.engine) as conn:
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
        with write_transaction(self.engine) as conn:
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
        with write_transaction(self.engine) as conn:
            model_id = self._require_version(conn, name, version)
            gone = conn.execute(
                delete(model_version_tags).where(
                    model_version_tags.c.model_id == model_id,
                    model_version_tags.c.version == version,
                    model_version_tags.c.key == key,
                )
            ).rowcount
            if not gone:
                raise ResourceDoesNotExist(
                    f"No tag with key={key!r} on model version (name={name!r}, version={version})"
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
                raise _version_not_found(name, version)
            return str(row.storage_location or row.source)

    # --- aliases -----------------------------------------------------------------------------

    def set_registered_model_alias(self, name: str, alias: str, version: int) -> None:
        with write_transaction(self.engine) as conn:
            model_id = self._require_version(conn, name, version)
            match = (
                registered_model_aliases.c.model_id == model_id,
                registered_model_aliases.c.alias == alias,
            )
            if not conn.execute(
                update(registered_model_aliases).where(*match).values(version=version)
            ).rowcount:
                conn.execute(
                    insert(registered_model_aliases).values(
                        model_id=model_id, alias=alias, version=version
                    )
                )
            self._touch_model(conn, model_id, now_ms())

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        with write_transaction(self.engine) as conn:
            model_id = self._model_id(conn, name)
            conn.execute(
                delete(registered_model_aliases).where(
                    registered_model_aliases.c.model_id == model_id,
                    registered_model_aliases.c.alias == alias,
                )
            )

    def get_model_version_by_alias(self, name: str, alias: str) -> registry_pb2.ModelVersion:
        with self.engine.connect() as conn:
            rows = list(
                conn.execute(
                    q.version_query()
                    .join(
                        registered_model_aliases,
                        and_(
                            registered_model_aliases.c.model_id == model_versions.c.model_id,
                            registered_model_aliases.c.version == model_versions.c.version,
                        ),
                    )
                    .where(
                        registered_models.c.name == name, registered_model_aliases.c.alias == alias
                    )
                )
            )
            if not rows:
                self._model_id(conn, name)  # a missing model is reported as such
                raise ResourceDoesNotExist(
                    f"Registered model alias {alias!r} of model {name!r} not found"
                )
            return q.load_versions(conn, rows)[0]
