"""Object-level access for the agents' side of the orchestrator: an `agent` token may lease,
renew, complete and fail tasks only as the agent its `sub` names (ossa_runtime.auth.principal).
"""

from __future__ import annotations

import asyncpg

from orchestrator_svc.batcher import UNREACHABLE, unavailable
from ossa_runtime.auth.principal import agent_scoped, current_principal, require_agent

# The agent a fencing token was issued to (any attempt), else the task's current holder.
_HOLDER = """
SELECT h.agent_id::text AS agent_id, a.name
FROM (SELECT agent_id, 0 AS rank FROM task_attempts WHERE task_id = $1 AND fencing_token = $2
      UNION ALL
      SELECT agent_id, 1 AS rank FROM tasks WHERE id = $1 AND agent_id IS NOT NULL
      ORDER BY rank LIMIT 1) AS h
LEFT JOIN agents a ON a.id = h.agent_id
"""


async def require_lease_holder(pool: asyncpg.Pool, task_id: str, fencing_token: int) -> None:
    """PermissionDenied when an agent token renews/completes/fails another agent's task.

    Tasks nobody holds pass: the engine then rejects the stale token as usual.
    """
    if not agent_scoped(current_principal()):
        return
    try:
        row = await pool.fetchrow(_HOLDER, task_id, fencing_token)
    except UNREACHABLE as err:
        raise unavailable(err) from err
    if row is None or row["agent_id"] is None:
        return
    require_agent(row["agent_id"], row["name"])
