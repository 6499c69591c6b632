"""PostgreSQL rows → protobuf messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf import timestamp_pb2

from ossa.registry.v1 import registry_pb2 as pb
from registry_svc.validation import STATUS_VALUES, TYPE_VALUES


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def agent_from_row(row: Any) -> pb.Agent:
    agent = pb.Agent(
        id=row["id"],
        name=row["name"],
        type=TYPE_VALUES[row["type"]],  # type: ignore[arg-type]
        version=row["version"],
        status=STATUS_VALUES[row["status"]],  # type: ignore[arg-type]
        capabilities=row["capabilities"],
        created_at=timestamp(row["created_at"]),
        updated_at=timestamp(row["updated_at"]),
    )
    # Always present in JSON, as `{}` when empty (the spec's Agent has both objects).
    agent.config.SetInParent()
    agent.metadata.SetInParent()
    agent.config.update(row["config"] or {})
    agent.metadata.update(row["metadata"] or {})
    if row["last_heartbeat"] is not None:
        agent.last_heartbeat.CopyFrom(timestamp(row["last_heartbeat"]))
    return agent
