"""A model registry store in plain Python dictionaries: the reference the registry contract
suite (:mod:`mlgrid.testing.registry_store_contract`) checks besides the SQL store.

Filters use the shared grammar (:func:`mlgrid.store.filter_parser.parse_filter`) with the
identifiers the registry allows. One lock serialises every call; nothing is persisted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from mlgrid.api.common.v1 import common_pb2
from mlgrid.api.registry.v1 import registry_pb2
from mlgrid.exceptions import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from mlgrid.limits import SEARCH_MODELS_DEFAULT, SEARCH_VERSIONS_DEFAULT
from mlgrid.registry.store import (
    STAGE_ARCHIVED,
    STAGE_NONE,
    STAGE_PRODUCTION,
    STAGE_STAGING,
    STAGES,
    AbstractRegistryStore,
    ModelVersion,
    Page,
    RegisteredModel,
)
from mlgrid.store.filter_parser import BoolOp, Comparison, FilterNode, parse_filter
from mlgrid.store.paging import decode_page_token, encode_page_token
from mlgrid.testing.memory_tracking_store import _compare

__all__ = ["MemoryRegistryStore"]

_MODEL_FIELDS = frozenset({"name"})
_VERSION_FIELDS = frozenset({"name", "version_number", "run_id", "source_path"})
_MODEL_ORDER = frozenset({"name", "creation_timestamp", "last_updated_timestamp"})
_VERSION_ORDER = frozenset(
    {"name", "version_number", "creation_timestamp", "last_updated_timestamp"}
)


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class _Version:
    proto: ModelVersion
    tags: dict[str, str] = field(default_factory=dict)
    storage_location: str = ""


@dataclass
class _Model:
    name: str
    created: int
    updated: int
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    versions: dict[int, _Version] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    #: The last version number handed out (numbers of deleted versions are not reused).
    last_number: int = 0


def _matches(node: FilterNode | None, lookup: Callable[[Comparison], list[object]]) -> bool:
    if node is None:
        return True
    if isinstance(node, BoolOp):
        results = (_matches(operand, lookup) for operand in node.operands)
        return all(results) if node.op == "AND" else any(results)
    values = lookup(node)
    if node.op in ("IS NULL", "IS NOT NULL"):
        return bool(values) == (node.op == "IS NOT NULL")
    return any(_compare(node.op, value, node.value) for value in values)


def _check_filter(text: str, fields: frozenset[str]) -> FilterNode | None:
    tree = parse_filter(text)
    stack = [tree] if tree is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, BoolOp):
            stack.extend(node.operands)
        elif node.kind != "tag" and not (node.kind == "attribute" and node.key in fields):
            raise InvalidParameterValue(
                f"Invalid filter {text!r}: cannot filter on {node.key!r}; expected "
                f"{', '.join(sorted(fields))} or tags.<key>"
            )
    return tree


def _order(
    clauses: Sequence[str], allowed: frozenset[str], default: list[tuple[str, bool]]
) -> list[tuple[str, bool]]:
    result = []
    for clause in clauses:
        parts = clause.split()
        field_name = parts[0] if parts else ""
        direction = parts[1].upper() if len(parts) > 1 else "ASC"
        if field_name not in allowed or len(parts) > 2 or direction not in ("ASC", "DESC"):
            raise InvalidParameterValue(
                f"Invalid order_by clause {clause!r}: expected one of {', '.join(sorted(allowed))} "
                "with an optional ASC or DESC"
            )
        result.append((field_name, direction == "ASC"))
    return result or default


def _page(items: list[object], max_results: int, page_token: str, kind: str) -> Page:
    offset = decode_page_token(page_token, kind)
    more = offset + max_results < len(items)
    token = encode_page_token(offset + max_results, kind) if more else ""
    return Page(items=items[offset : offset + max_results], next_page_token=token)


class MemoryRegistryStore(AbstractRegistryStore):
    """Registered models, versions, tags and aliases in dictionaries."""

    def __init__(self, store_uri: str = "memory://registry") -> None:
        self.store_uri = store_uri
        self._lock = threading.RLock()
        self._models: dict[str, _Model] = {}

    # ----------------------------------------------------------------- helpers

    def _model(self, name: str) -> _Model:
        found = self._models.get(name)
        if found is None:
            raise ResourceDoesNotExist(f"Registered model {name!r} does not exist")
        return found

    def _version(self, name: str, version: int) -> _Version:
        found = self._model(name).versions.get(int(version))
        if found is None:
            raise ResourceDoesNotExist(f"Model version {name!r} version {version} does not exist")
        return found

    def _version_proto(self, model: _Model, number: int) -> ModelVersion:
        version = model.versions[number]
        proto = ModelVersion()
        proto.CopyFrom(version.proto)
        proto.name = model.name
        proto.tags.extend(common_pb2.Tag(key=k, value=v) for k, v in sorted(version.tags.items()))
        proto.aliases.extend(sorted(a for a, n in model.aliases.items() if n == number))
        return proto

    def _latest_per_stage(self, model: _Model, stages: Sequence[str]) -> list[ModelVersion]:
        latest: dict[str, int] = {}
        for number, version in model.versions.items():
            stage = version.proto.current_stage
            if (not stages or stage in stages) and number > latest.get(stage, 0):
                latest[stage] = number
        ordered = [latest[s] for s in STAGES if s in latest]
        return [self._version_proto(model, n) for n in sorted(ordered)]

    def _model_proto(self, model: _Model) -> RegisteredModel:
        return RegisteredModel(
            name=model.name,
            creation_timestamp=model.created,
            last_updated_timestamp=model.updated,
            description=model.description,
            latest_versions=self._latest_per_stage(model, ()),
            tags=[common_pb2.Tag(key=k, value=v) for k, v in sorted(model.tags.items())],
            aliases=[
                registry_pb2.RegisteredModelAlias(alias=a, version=str(n))
                for a, n in sorted(model.aliases.items())
            ],
        )

    # ------------------------------------------------------------ registered models

    def create_registered_model(
        self, name: str, tags: Sequence[tuple[str, str]] = (), description: str = ""
    ) -> RegisteredModel:
        with self._lock:
            if name in self._models:
                raise ResourceAlreadyExists(f"Registered model {name!r} already exists")
            now = _now_ms()
            model = self._models[name] = _Model(name, now, now, description, dict(tags))
            return self._model_proto(model)

    def get_registered_model(self, name: str) -> RegisteredModel:
        with self._lock:
            return self._model_proto(self._model(name))

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        with self._lock:
            model = self._model(name)
            if new_name in self._models:
                raise ResourceAlreadyExists(f"Registered model {new_name!r} already exists")
            del self._models[name]
            model.name, model.updated = new_name, _now_ms()
            self._models[new_name] = model
            return self._model_proto(model)

    def update_registered_model(self, name: str, description: str) -> RegisteredModel:
        with self._lock:
            model = self._model(name)
            model.description, model.updated = description, max(_now_ms(), model.updated + 1)
            return self._model_proto(model)

    def delete_registered_model(self, name: str) -> None:
        with self._lock:
            self._model(name)
            del self._models[name]

    def search_registered_models(
        self,
        filter_string: str = "",
        max_results: int = SEARCH_MODELS_DEFAULT,
        order_by: Sequence[str] = (),
        page_token: str = "",
    ) -> Page:
        tree = _check_filter(filter_string, _MODEL_FIELDS)
        order = _order(order_by, _MODEL_ORDER, [("name", True)])

        def lookup(model: _Model, comp: Comparison) -> list[object]:
            if comp.kind == "tag":
                return [model.tags[comp.key]] if comp.key in model.tags else []
            return [model.name]

        def value(model: _Model, key: str) -> Any:
            return {"name": model.name, "creation_timestamp": model.created}.get(key, model.updated)

        with self._lock:
            found = [m for m in self._models.values() if _matches(tree, partial(lookup, m))]
            for key, ascending in reversed([*order, ("name", True)]):
                found.sort(key=partial(value, key=key), reverse=not ascending)
            items: list[object] = [self._model_proto(m) for m in found]
        return _page(items, max_results, page_token, "registered models")

    def get_latest_versions(self, name: str, stages: Sequence[str] = ()) -> list[ModelVersion]:
        with self._lock:
            return self._latest_per_stage(self._model(name), stages)

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        with self._lock:
            self._model(name).tags[key] = value

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        with self._lock:
            self._model(name).tags.pop(key, None)

    # --------------------------------------------------------------- model versions

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
    ) -> ModelVersion:
        with self._lock:
            model = self._model(name)
            model.last_number += 1
            now = _now_ms()
            proto = ModelVersion(
                version=str(model.last_number),
                creation_timestamp=now,
                last_updated_timestamp=now,
                user_id=user_id,
                current_stage=STAGE_NONE,
                description=description,
                source=source,
                run_id=run_id,
                status=registry_pb2.MODEL_VERSION_STATUS_READY,
                run_link=run_link,
                model_id=model_id,
            )
            model.versions[model.last_number] = _Version(proto, dict(tags), storage_location)
            model.updated = now
            return self._version_proto(model, model.last_number)

    def get_model_version(self, name: str, version: int) -> ModelVersion:
        with self._lock:
            self._version(name, version)
            return self._version_proto(self._models[name], int(version))

    def update_model_version(self, name: str, version: int, description: str) -> ModelVersion:
        with self._lock:
            found = self._version(name, version)
            found.proto.description = description
            found.proto.last_updated_timestamp = _now_ms()
            return self._version_proto(self._models[name], int(version))

    def delete_model_version(self, name: str, version: int) -> None:
        with self._lock:
            self._version(name, version)
            model = self._models[name]
            del model.versions[int(version)]
            model.aliases = {a: n for a, n in model.aliases.items() if n != int(version)}

    def search_model_versions(
        self,
        filter_string: str = "",
        max_results: int = SEARCH_VERSIONS_DEFAULT,
        order_by: Sequence[str] = (),
        page_token: str = "",
    ) -> Page:
        tree = _check_filter(filter_string, _VERSION_FIELDS)
        order = _order(order_by, _VERSION_ORDER, [("name", True), ("version_number", False)])

        def lookup(model: _Model, number: int, comp: Comparison) -> list[object]:
            version = model.versions[number]
            if comp.kind == "tag":
                return [version.tags[comp.key]] if comp.key in version.tags else []
            return [
                {
                    "name": model.name,
                    "version_number": float(number),
                    "run_id": version.proto.run_id,
                    "source_path": version.proto.source,
                }[comp.key]
            ]

        def value(pair: tuple[_Model, int], key: str) -> Any:
            model, number = pair
            proto = model.versions[number].proto
            return {
                "name": model.name,
                "version_number": number,
                "creation_timestamp": proto.creation_timestamp,
            }.get(key, proto.last_updated_timestamp)

        with self._lock:
            found = [
                (m, n)
                for m in self._models.values()
                for n in m.versions
                if _matches(tree, partial(lookup, m, n))
            ]
            for key, ascending in reversed(order):
                found.sort(key=partial(value, key=key), reverse=not ascending)
            items: list[object] = [self._version_proto(m, n) for m, n in found]
        return _page(items, max_results, page_token, "model versions")

    def transition_model_version_stage(
        self, name: str, version: int, stage: str, archive_existing_versions: bool
    ) -> ModelVersion:
        if archive_existing_versions and stage not in (STAGE_STAGING, STAGE_PRODUCTION):
            raise InvalidParameterValue(
                f"archive_existing_versions is only allowed when moving to {STAGE_STAGING} or "
                f"{STAGE_PRODUCTION}, not to {stage!r}"
            )
        with self._lock:
            found = self._version(name, version)
            model, now = self._models[name], _now_ms()
            if archive_existing_versions:
                for number, other in model.versions.items():
                    if number != int(version) and other.proto.current_stage == stage:
                        other.proto.current_stage = STAGE_ARCHIVED
                        other.proto.last_updated_timestamp = now
            found.proto.current_stage = stage
            found.proto.last_updated_timestamp = now
            model.updated = now
            return self._version_proto(model, int(version))

    def set_model_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        with self._lock:
            self._version(name, version).tags[key] = value

    def delete_model_version_tag(self, name: str, version: int, key: str) -> None:
        with self._lock:
            self._version(name, version).tags.pop(key, None)

    def get_model_version_download_uri(self, name: str, version: int) -> str:
        with self._lock:
            found = self._version(name, version)
            return found.storage_location or found.proto.source

    # ----------------------------------------------------------------------- aliases

    def set_registered_model_alias(self, name: str, alias: str, version: int) -> None:
        with self._lock:
            self._version(name, version)
            self._models[name].aliases[alias] = int(version)

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        with self._lock:
            self._model(name).aliases.pop(alias, None)

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        with self._lock:
            model = self._model(name)
            if alias not in model.aliases:
                raise ResourceDoesNotExist(f"Registered model {name!r} has no alias {alias!r}")
            return self._version_proto(model, model.aliases[alias])
