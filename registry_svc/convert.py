"""PostgreSQL rows → protobuf messages (the Agent message is shared with search: ossa_runtime.messages)."""

from __future__ import annotations

from ossa_runtime.messages import agent_message as agent_from_row
from ossa_runtime.messages import timestamp

__all__ = ["agent_from_row", "timestamp"]
