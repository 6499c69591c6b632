"""Rows of the shared tables → the public protobuf messages that show them.

The `agents` and `workflows` rows are owned by the registry and the orchestrator, but the search
service answers with the same `Agent` and `Workflow` messages for what it finds (it reads the rows
from PostgreSQL, the system of record). One conversion, here, so the three never disagree and no
service imports another's modules. Enum values are stored under their value names.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

from ossa.orchestrator.v1 import orchestrator_pb2
from ossa.registry.v1 import registry_pb2

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """The same Timestamp as `FromDatetime` (a naive value taken as UTC), in a third of its time:
    every row of every list and search answer carries a few."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    seconds, micros = divmod((value - _EPOCH) // _MICROSECOND, 1_000_000)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=micros * 1000)


def struct(value: dict[str, Any] | None) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value or {})
    return s


def set_times(message: Any, row: Any, *names: str) -> None:
    """Copy the row's timestamp columns that are set into the message's fields of the same names."""
    for name in names:
        if row[name] is not None:
            getattr(message, name).CopyFrom(timestamp(row[name]))


def agent_from_row(row: Any) -> registry_pb2.Agent:
    agent = registry_pb2.Agent(
        id=row["id"],
        name=row["name"],
        type=row["type"],
        version=row["version"],
        status=row["status"],
        capabilities=row["capabilities"],
    )
    set_times(agent, row, "created_at", "updated_at", "last_heartbeat")
    # Always present in JSON, as `{}` when empty (the spec's Agent has both objects).
    agent.config.SetInParent()
    agent.metadata.SetInParent()
    agent.config.update(row["config"] or {})
    agent.metadata.update(row["metadata"] or {})
    return agent


def workflow_message(row: Any) -> orchestrator_pb2.Workflow:
    out = orchestrator_pb2.Workflow(
        id=row["id"],
        name=row["name"],
        version=row["version"],
        description=row["description"],
        definition=struct(row["definition"]),
        status=row["status"],
    )
    set_times(out, row, "created_at", "updated_at")
    return out
