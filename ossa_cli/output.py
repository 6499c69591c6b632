"""What the operator commands print: a table for people, JSON for programs.

`-o json` prints the messages as the REST API does (proto3 JSON with the proto's field names), one
document per command: an object for `get`, a list for `list`. `-o table` prints chosen columns, one
row per item; table is the default when stdout is a terminal, JSON otherwise.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

Column = tuple[str, Callable[[dict[str, Any]], Any]]  # (header, value from the message's JSON form)


def as_json(message: Message) -> dict[str, Any]:
    """The message as the REST API prints it (snake_case names, enums by name)."""
    return MessageToDict(message, preserving_proto_field_name=True)


def choose(output: str | None, stream: TextIO | None = None) -> str:
    """The format: the one asked for, else table on a terminal and json otherwise."""
    if output:
        return output
    return "table" if (stream or sys.stdout).isatty() else "json"


def field(name: str, default: str = "") -> Callable[[dict[str, Any]], Any]:
    """A column reading one (dotted) field of the JSON form."""

    def read(item: dict[str, Any]) -> Any:
        value: Any = item
        for part in name.split("."):
            if not isinstance(value, dict):
                return default
            value = value.get(part, default)
        return value

    return read


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """Left-aligned columns under their headers, two spaces apart."""
    cells = [[header.upper() for header, _ in columns]]
    cells += [[_cell(read(row)) for _, read in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells)


def emit(
    items: Sequence[Message] | Message, columns: Sequence[Column], output: str | None, stream: TextIO | None = None
) -> None:
    """Print one message (an object) or several (a list) in the chosen format."""
    out = stream or sys.stdout
    single = isinstance(items, Message)
    rows = [as_json(items)] if isinstance(items, Message) else [as_json(m) for m in items]
    if choose(output, out) == "json":
        print(json.dumps(rows[0] if single else rows, indent=2), file=out, flush=True)
    else:
        print(table(rows, columns), file=out, flush=True)
