"""Protobuf wire format by hand, for requests protobuf itself would refuse to build or parse."""

from __future__ import annotations

from typing import Any

BAD = b"\xff\xfe"  # never UTF-8


def varint(n: int) -> bytes:
    out = b""
    while True:
        low, n = n & 0x7F, n >> 7
        if not n:
            return out + bytes([low])
        out += bytes([low | 0x80])


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def deep_struct(levels: int) -> bytes:
    """A google.protobuf.Struct {"a": {"a": ...}} `levels` levels deep, built on the wire (protobuf
    itself refuses to build what it could not parse)."""
    struct = b""
    for _ in range(levels):
        value = field(5, struct)  # Value.struct_value
        struct = field(1, field(1, b"a") + field(2, value))  # Struct.fields entry {key, value}
    return struct


def spoil(message: Any, marker: str) -> bytes:
    """`message` serialized, with the string `marker` in it no longer UTF-8."""
    data: bytes = message.SerializeToString()
    assert marker.encode() in data
    return data.replace(marker.encode(), BAD + marker.encode()[len(BAD) :])
