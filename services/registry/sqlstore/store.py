"""The SQL registry store (SQLite and PostgreSQL), implementing AbstractRegistryStore.

Version numbers come from a per-model counter bumped with one atomic
``UPDATE registered_models SET last_version = last_version + 1 ... RETURNING``: the row lock it
takes (PostgreSQL) or the write lock of BEGIN IMMEDIATE (SQLite) serialises concurrent creators
until commit, and a failed insert rolls the counter back, so numbers are unique and gap-free.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from mlgrid.api.registry.v1 import registry_pb2
from mlgrid.exceptions import ResourceAlreadyExists
from mlgrid.limits import SEARCH_MODELS_DEFAULT
from mlgrid.registry.store import AbstractRegistryStore, Page
from mlgrid.store.paging import decode_page_token, encode_page_token

from ..search import MODEL_GRAMMAR, OrderBy, parse_filter, parse_order_by
from . import pgfast
from . import queries as q
from .base import alias_not_found, now_ms
from .schema import (
    model_version_tags,
    model_versions,
    registered_model_aliases,
    registered_model_tags,
    registered_models,
)
from .versions import VersionOperations


class SqlRegistryStore(VersionOperations, AbstractRegistryStore):
    """Registry store over SQLAlchemy; the schema is brought to head when the store opens.

    Version operations live in :class:`VersionOperations`; registered models, their tags and
    aliases here.
    """

    # --- registered models -------------------------------------------------------------------

    def create_registered_model(
        self, name: str, tags: Sequence[tuple[str, str]] = (), description: str = ""
    ) -> registry_pb2.RegisteredModel:
        when = now_ms()
        try:
            with self._write() as conn:
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
            with self._write() as conn:
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
        with self._write() as conn:
            model_id = self._model_id(conn, name)
            conn.execute(
                update(registered_models)
                .where(registered_models.c.id == model_id)
                .values(description=description, last_updated_time=now_ms())
            )
            return self._read_model(conn, name)

    def delete_registered_model(self, name: str) -> None:
        # Children first, explicitly: the result must not depend on the FK cascade being on.
        with self._write() as conn:
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
        offset = decode_page_token(page_token, "registered models")
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
        token = (
            encode_page_token(offset + max_results, "registered models")
            if len(rows) > max_results
            else ""
        )
        return Page(items, token)

    def get_latest_versions(
        self, name: str, stages: Sequence[str] = ()
    ) -> list[registry_pb2.ModelVersion]:
        with self.engine.connect() as conn:
            model_id = self._model_id(conn, name)
            rows = q.latest_version_rows(conn, [model_id], stages)
            return q.load_versions(conn, rows)

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        with self._write() as conn:
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
        with self._write() as conn:
            model_id = self._model_id(conn, name)
            # A missing tag is not an error (MLflow's registry is idempotent here).
            conn.execute(
                delete(registered_model_tags).where(
                    registered_model_tags.c.model_id == model_id, registered_model_tags.c.key == key
                )
            )

    # --- aliases -----------------------------------------------------------------------------

    def set_registered_model_alias(self, name: str, alias: str, version: int) -> None:
        with self._write() as conn:
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
        with self._write() as conn:
            model_id = self._model_id(conn, name)
            conn.execute(
                delete(registered_model_aliases).where(
                    registered_model_aliases.c.model_id == model_id,
                    registered_model_aliases.c.alias == alias,
                )
            )

    def get_model_version_by_alias(self, name: str, alias: str) -> registry_pb2.ModelVersion:
        if self.pg is not None:
            return self._fast_version_read(
                ("alias", name, alias),
                pgfast.VERSION_BY_ALIAS,
                {"name": name, "alias": alias},
                lambda: alias_not_found(name, alias),
            )
        with self.engine.connect() as conn:
            rows = list(conn.execute(q.VERSION_BY_ALIAS, {"name": name, "alias": alias}))
            if not rows:
                self._model_id(conn, name)  # a missing model is reported as such
                raise alias_not_found(name, alias)
            return q.load_versions(conn, rows)[0]
