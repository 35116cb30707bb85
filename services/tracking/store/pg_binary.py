"""PostgreSQL binary array parameters for the bulk metric writes.

A batch of 1,000 points travels as a few array parameters. As text, every float is rendered with
repr() on our side (~0.25 µs each) and parsed by float8in on the server; in PostgreSQL's binary
array format both sides copy bytes. The arrays are packed with one struct.pack per column and a
few strided slice copies (C loops), so a 1,000-element array costs ~15 µs to build.

Binary array layout (array_send): ndim, has-nulls flag, element type oid, then per dimension its
length and lower bound, then each element as a 4-byte length and its big-endian bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from psycopg import adapters
from psycopg.adapt import Dumper
from psycopg.pq import Format

_HEADER = struct.Struct(">iiIii")

#: Element type oids (pg_type) and the array type oids they belong to.
_INT8_OID, _INT8_ARRAY_OID = 20, 1016
_FLOAT8_OID, _FLOAT8_ARRAY_OID = 701, 1022
_BOOL_OID, _BOOL_ARRAY_OID = 16, 1000


class Int8Array(bytes):
    """A bigint[] already in binary array format."""


class Float8Array(bytes):
    """A float8[] already in binary array format."""


class BoolArray(bytes):
    """A boolean[] already in binary array format."""


def _pack(code: str, oid: int, size: int, values: Sequence[object]) -> bytes:
    count = len(values)
    packed = struct.pack(f">{count}{code}", *values)
    record = 4 + size
    body = bytearray(record * count)
    # Each element: its length as a big-endian int32 (only the low byte is non-zero: sizes are
    # 1 or 8), then its bytes; strided slice assignment fills one byte column at a time.
    body[3::record] = bytes((size,)) * count
    for offset in range(size):
        body[4 + offset :: record] = packed[offset::size]
    return _HEADER.pack(1, 0, oid, count, 1) + body


def int8_array(values: Sequence[int]) -> Int8Array:
    """``values`` (each within int64) as a bigint[] parameter; struct.error otherwise."""
    return Int8Array(_pack("q", _INT8_OID, 8, values))


def float8_array(values: Sequence[float]) -> Float8Array:
    """``values`` as a float8[] parameter (NaN and ±inf travel exactly)."""
    return Float8Array(_pack("d", _FLOAT8_OID, 8, values))


def bool_array(values: Sequence[bool]) -> BoolArray:
    return BoolArray(_pack("?", _BOOL_OID, 1, values))


def _dumper(oid: int) -> type[Dumper]:
    class _PackedArrayDumper(Dumper):
        format = Format.BINARY

        def dump(self, obj: bytes) -> bytes:
            return obj

    _PackedArrayDumper.oid = oid
    return _PackedArrayDumper


# Registered on psycopg's global adapters before any connection exists (the store module is
# imported when the service starts): connections copy the global map when they are created.
adapters.register_dumper(Int8Array, _dumper(_INT8_ARRAY_OID))
adapters.register_dumper(Float8Array, _dumper(_FLOAT8_ARRAY_OID))
adapters.register_dumper(BoolArray, _dumper(_BOOL_ARRAY_OID))
