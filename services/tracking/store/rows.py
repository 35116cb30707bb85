"""Rows → protos, with each entity's columns named once.

A run's or an experiment's columns are declared here, with the proto field each fills and how
its value is decoded. The SELECT lists, the search page's UNION slots and the decoders are all
derived from these declarations, so a new column is one line here (plus the schema and a
migration), not parallel positional indexes in several statements.

Decoders work on plain DB-API tuples by position, computed once from the declarations: the
search page skips SQLAlchemy's Row wrapping because that halves the fetch cost of a large page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import sqlalchemy as sa

from mlgrid.api.tracking.v1 import tracking_pb2

from . import schema as t

#: RunStatus numbers ↔ the names stored in runs.status (MLflow stores names too, and search
#: compares ``attributes.status = 'FINISHED'``).
STATUS_NAMES = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
STATUS_NUMBERS = {name: number for number, name in STATUS_NAMES.items()}

TEXT = "text"
INTEGER = "integer"


@dataclass(frozen=True)
class Field:
    """One column and the proto field it fills."""

    name: str
    column: sa.Column[Any]
    #: The kind of slot the column travels in through the search page's UNION (TEXT, INTEGER).
    slot: str
    decode: Callable[[Any], Any] | None = None
    #: NULL leaves the proto field unset (proto3 optional), rather than storing a default.
    nullable: bool = False


def _status_number(name: str) -> int:
    return STATUS_NUMBERS.get(name, 0)


_R = t.runs.c

#: RunInfo beyond its id (``run_uuid``, always first), in SELECT order.
RUN_INFO_FIELDS: tuple[Field, ...] = (
    Field("run_name", _R.name, TEXT),
    Field("user_id", _R.user_id, TEXT),
    Field("status", _R.status, TEXT, _status_number),
    Field("artifact_uri", _R.artifact_uri, TEXT),
    Field("lifecycle_stage", _R.lifecycle_stage, TEXT),
    Field("experiment_id", _R.experiment_id, INTEGER, str),
    Field("start_time", _R.start_time, INTEGER),
    Field("end_time", _R.end_time, INTEGER, nullable=True),
)

RUN_INFO_COLUMNS: tuple[sa.Column[Any], ...] = (
    _R.run_uuid,
    *(field.column for field in RUN_INFO_FIELDS),
)

_Decoder = tuple[tuple[str, int, Callable[[Any], Any] | None, bool], ...]


def _decoder(fields: Sequence[Field], positions: Sequence[int]) -> _Decoder:
    return tuple(
        (field.name, position, field.decode, field.nullable)
        for field, position in zip(fields, positions, strict=True)
    )


def _fill(message: Any, row: Sequence[Any], decoder: _Decoder) -> None:
    for name, position, decode, nullable in decoder:
        value = row[position]
        if value is None and nullable:
            continue
        setattr(message, name, value if decode is None else decode(value))


_RUN_INFO_DECODER = _decoder(RUN_INFO_FIELDS, range(1, len(RUN_INFO_FIELDS) + 1))


def run_info_from_row(row: Sequence[Any], info: tracking_pb2.RunInfo | None = None) -> Any:
    """The RunInfo of a row selected with RUN_INFO_COLUMNS (filled into ``info`` if given)."""
    if info is None:
        info = tracking_pb2.RunInfo()
    info.run_id = row[0]
    _fill(info, row, _RUN_INFO_DECODER)
    return info


# ------------------------------------------------------------------ the search page's rows


class PageRow:
    """The layout of a search page row (see RunReadsMixin._page_statement): a UNION ALL of
    runs, params, tags, latest metrics, input markers and MLflow 3's model outputs and inputs,
    tagged by kind, each arm filling the typed slots it uses and leaving the others NULL:

    ``(kind, order, run_uuid, TEXTS texts, number, flag, INTEGERS integers)``

    A model output is (model_id as the first text, step as the third integer); a model input
    is its model_id alone.
    """

    RUN, PARAM, TAG, METRIC, INPUTS, MODEL_OUTPUT, MODEL_INPUT = 3, 0, 1, 2, 4, 5, 6

    TEXTS = max(2, sum(field.slot == TEXT for field in RUN_INFO_FIELDS))
    INTEGERS = max(3, sum(field.slot == INTEGER for field in RUN_INFO_FIELDS))
    FIRST_TEXT = 3
    NUMBER = FIRST_TEXT + TEXTS
    FLAG = NUMBER + 1
    FIRST_INTEGER = FLAG + 1

    @classmethod
    def run_slots(cls, page: Any) -> tuple[list[Any], list[Any]]:
        """The page CTE's RunInfo columns, as (text slots, integer slots)."""
        texts = [page[f.column.name] for f in RUN_INFO_FIELDS if f.slot == TEXT]
        integers = [
            sa.cast(page[f.column.name], sa.BigInteger)
            for f in RUN_INFO_FIELDS
            if f.slot == INTEGER
        ]
        return texts, integers

    #: A data row (param, tag, metric) as (kind, run_uuid, key, text, number, flag, timestamp,
    #: step): a metric's integers are (unused, timestamp, step).
    data = itemgetter(0, 2, 3, 4, NUMBER, FLAG, FIRST_INTEGER + 1, FIRST_INTEGER + 2)


def _page_positions() -> list[int]:
    texts = iter(range(PageRow.FIRST_TEXT, PageRow.NUMBER))
    integers = iter(range(PageRow.FIRST_INTEGER, PageRow.FIRST_INTEGER + PageRow.INTEGERS))
    return [next(texts) if f.slot == TEXT else next(integers) for f in RUN_INFO_FIELDS]


_PAGE_RUN_DECODER = _decoder(RUN_INFO_FIELDS, _page_positions())


def fill_run_info_from_page_row(info: tracking_pb2.RunInfo, row: Sequence[Any]) -> None:
    info.run_id = row[2]
    _fill(info, row, _PAGE_RUN_DECODER)


# ------------------------------------------------------------------ experiments

_E = t.experiments.c

EXPERIMENT_FIELDS: tuple[Field, ...] = (
    Field("experiment_id", _E.experiment_id, INTEGER, str),
    Field("name", _E.name, TEXT),
    Field("artifact_location", _E.artifact_location, TEXT),
    Field("lifecycle_stage", _E.lifecycle_stage, TEXT),
    Field("creation_time", _E.creation_time, INTEGER),
    Field("last_update_time", _E.last_update_time, INTEGER),
)

EXPERIMENT_COLUMNS: tuple[sa.Column[Any], ...] = tuple(f.column for f in EXPERIMENT_FIELDS)
_EXPERIMENT_DECODER = _decoder(EXPERIMENT_FIELDS, range(len(EXPERIMENT_FIELDS)))


def experiment_from_row(row: Sequence[Any]) -> tracking_pb2.Experiment:
    """The Experiment (without tags) of a row selected with EXPERIMENT_COLUMNS."""
    experiment = tracking_pb2.Experiment()
    _fill(experiment, row, _EXPERIMENT_DECODER)
    return experiment
