"""A datastore that cannot be reached (down, restarting, a connection cut) is UNAVAILABLE to the
caller, who may try again, not INTERNAL, which callers (agents included) take for a bug and do not
retry. The interceptor chain maps it for every RPC (ossa_runtime/interceptors.py); the
orchestrator's group commits map it per batch (orchestrator_svc/batcher.py).
"""

from __future__ import annotations

import asyncpg
import redis.exceptions

from ossa_runtime.errors import Unavailable

# PostgreSQL or Redis is down, restarting or shutting down, or the connection broke.
UNREACHABLE: tuple[type[BaseException], ...] = (
    ConnectionError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


def unavailable(err: BaseException, kinds: tuple[type[BaseException], ...] = UNREACHABLE) -> BaseException:
    """Unavailable("... try again") for an error of `kinds`, chained to it; any other error as it is."""
    if not isinstance(err, kinds):
        return err
    store = "Redis" if isinstance(err, redis.exceptions.RedisError) else "the database"
    wrapped = Unavailable(f"{store} is unavailable ({type(err).__name__}: {err}); try again")
    wrapped.__cause__ = err
    return wrapped
