"""Just enough of the protobuf wire format to read a routing key from raw request bytes.

The gateway forwards requests without parsing them; only the string in field 1 (``artifact_uri``
of artifacts requests, ``backend`` of projects requests) decides where a call goes. Serializers
write fields in field-number order, so field 1 is almost always at offset 0 and this is a couple
of byte reads; other layouts are handled by skipping fields until field 1 turns up.
"""

from __future__ import annotations

_VARINT, _I64, _LEN, _SGROUP, _EGROUP, _I32 = 0, 1, 2, 3, 4, 5


class WireFormatError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise WireFormatError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def read_string_field(data: bytes, number: int = 1) -> str:
    """The last value of string field ``number`` in ``data`` ("" when absent, as protobuf says)."""
    found = ""
    pos = 0
    end = len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        field, wire_type = key >> 3, key & 7
        if wire_type == _VARINT:
            _, pos = _varint(data, pos)
        elif wire_type == _I64:
            pos += 8
        elif wire_type == _I32:
            pos += 4
        elif wire_type == _LEN:
            length, pos = _varint(data, pos)
            if pos + length > end:
                raise WireFormatError(f"field {field} runs past the end of the message")
            if field == number:
                try:
                    found = data[pos : pos + length].decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise WireFormatError(f"field {field} is not valid UTF-8") from exc
            pos += length
        else:  # groups are obsolete and never used by mlgrid's contracts
            raise WireFormatError(f"unsupported wire type {wire_type} in field {field}")
        if pos > end:
            raise WireFormatError("message is truncated")
    return found
