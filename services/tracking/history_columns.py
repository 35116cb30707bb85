"""A columnar chunk of a streamed metric history (StreamMetricHistoryResponse.columns).

Filling a repeated field from Python turns every element into a Python number on the way in. On
the wire, a packed fixed-width field (sfixed64, double) is just its values' little-endian bytes
behind a tag and a length, so the chunk is written as bytes and parsed once: protobuf copies a
packed fixed-width run wholesale, and nothing is done per point.
"""

from __future__ import annotations

import sys
from array import array

from mlgrid.api.tracking.v1 import tracking_service_pb2 as pb
from mlgrid.store.tracking_store import HistoryColumns

_LENGTH_DELIMITED = 2
#: Field numbers: StreamMetricHistoryResponse.columns, MetricHistoryColumns' three columns.
_RESPONSE_COLUMNS = pb.StreamMetricHistoryResponse.COLUMNS_FIELD_NUMBER
_STEPS = pb.MetricHistoryColumns.STEPS_FIELD_NUMBER
_TIMESTAMPS = pb.MetricHistoryColumns.TIMESTAMPS_FIELD_NUMBER
_VALUES = pb.MetricHistoryColumns.VALUES_FIELD_NUMBER


def _varint(number: int) -> bytes:
    out = bytearray()
    while number > 0x7F:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | _LENGTH_DELIMITED) + _varint(len(payload)) + payload


def _little_endian(column: array) -> bytes:
    if sys.byteorder == "little":
        return column.tobytes()
    swapped = array(column.typecode, column)
    swapped.byteswap()
    return swapped.tobytes()


def columns_chunk(columns: HistoryColumns) -> pb.StreamMetricHistoryResponse:
    """One stream message carrying ``columns`` (all three the same length)."""
    body = b"".join(
        _field(number, _little_endian(column))
        for number, column in (
            (_STEPS, columns.steps),
            (_TIMESTAMPS, columns.timestamps),
            (_VALUES, columns.values),
        )
        if column
    )
    return pb.StreamMetricHistoryResponse.FromString(_field(_RESPONSE_COLUMNS, body))
