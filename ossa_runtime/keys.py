"""Every Redis key the platform uses, named once (the spec's "Redis Key Structure").

Convention: `{namespace}:{entity}:{id}:{field}`. Nothing else in the code base spells a key.
"""

from __future__ import annotations

NS = "ossa"

# Agent registry
AGENTS_REGISTRY = f"{NS}:agents:registry"  # SET of all agent ids


def agent_info(agent_id: str) -> str:
    """HASH with the agent's details."""
    return f"{NS}:agent:{agent_id}:info"


def agent_status(agent_id: str) -> str:
    """STRING with the agent's current status."""
    return f"{NS}:agent:{agent_id}:status"


def agent_heartbeat(agent_id: str) -> str:
    """STRING with the last heartbeat's timestamp, TTL 60 s."""
    return f"{NS}:agent:{agent_id}:heartbeat"


# Task queue
TASKS_PENDING = f"{NS}:tasks:pending"  # LIST of task ids
TASKS_PRIORITY = f"{NS}:tasks:priority"  # ZSET of task ids sorted by priority
# STRING: present once the two queue keys were rebuilt from PostgreSQL (absent after a flush).
TASKS_MIRRORED = f"{NS}:tasks:mirrored"


def task_data(task_id: str) -> str:
    """HASH with the task's details."""
    return f"{NS}:task:{task_id}:data"


def task_lock(task_id: str) -> str:
    """STRING with the holding agent's id, TTL from the lease."""
    return f"{NS}:task:{task_id}:lock"


# Workflow state
def workflow_state(workflow_id: str) -> str:
    """HASH with the workflow's execution state."""
    return f"{NS}:workflow:{workflow_id}:state"


def workflow_steps(workflow_id: str) -> str:
    """LIST of step ids."""
    return f"{NS}:workflow:{workflow_id}:steps"


def workflow_variables(workflow_id: str) -> str:
    """HASH with workflow variables."""
    return f"{NS}:workflow:{workflow_id}:variables"


# Metrics buffer
METRICS_BUFFER = f"{NS}:metrics:buffer"  # LIST of metric entries
# LIST: the batch being flushed from the buffer, kept until PostgreSQL has it (crash recovery).
METRICS_BUFFER_PROCESSING = f"{NS}:metrics:buffer:processing"


def metrics_aggregates(metric: str, window: str) -> str:
    """HASH with aggregated values of one metric over one window."""
    return f"{NS}:metrics:aggregates:{metric}:{window}"


# Sessions
def session(session_id: str) -> str:
    """HASH with session data, TTL 3600 s."""
    return f"{NS}:session:{session_id}"


def user_sessions(user_id: str) -> str:
    """SET of a user's session ids."""
    return f"{NS}:user:{user_id}:sessions"


# Rate limiting
def ratelimit(client_id: str, endpoint: str) -> str:
    """STRING with a request count, TTL of the window."""
    return f"{NS}:ratelimit:{client_id}:{endpoint}"


# Authentication
def token_revoked(jti: str) -> str:
    """STRING marking a revoked token id, TTL until the token's own expiry."""
    return f"{NS}:token:revoked:{jti}"


# STRING: present once the revoked token ids were copied from PostgreSQL (absent after a flush).
TOKENS_REVOKED_SYNCED = f"{NS}:tokens:revoked:synced"
# PUBSUB channel: every revoked jti is published here (each service drops its cached "not revoked").
TOKENS_REVOKED_CHANNEL = f"{NS}:auth:revoked"
