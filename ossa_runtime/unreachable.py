"""A datastore that cannot be reached (down, restarting, a connection cut) is UNAVAILABLE to the
caller, who may try again, not INTERNAL, which callers (agents included) take for a bug and do not
retry. The interceptor chain maps it for every RPC (ossa_runtime/interceptors.py); the
orchestrator's group commits map it per batch (orchestrator_svc/batcher.py).
"""

from __future__ import annotations

import logging

import asyncpg
import redis.exceptions

from ossa_runtime.errors import Unavailable

log = logging.getLogger("ossa.unreachable")

# PostgreSQL or Redis is down, restarting or shutting down, or the connection broke.
UNREACHABLE: tuple[type[BaseException], ...] = (
    ConnectionError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    # A connection PostgreSQL broke while it was in use: during a fast shutdown a statement bound on
    # a connection still reading the server's FATAL gets "cannot switch to state 12; another
    # operation (2) is in progress" (benchmarks/faults.py scenario 2a). Logged: it is also what a
    # connection used by two callers at once would raise.
    asyncpg.InternalClientError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


def unavailable(err: BaseException, kinds: tuple[type[BaseException], ...] = UNREACHABLE) -> BaseException:
    """Unavailable("... try again") for an error of `kinds`, chained to it; any other error as it is."""
    if not isinstance(err, kinds):
        return err
    if isinstance(err, asyncpg.InternalClientError):
        log.warning("database connection in a bad state, answered UNAVAILABLE: %s", err)
    store = "Redis" if isinstance(err, redis.exceptions.RedisError) else "the database"
    wrapped = Unavailable(f"{store} is unavailable ({type(err).__name__}: {err}); try again")
    wrapped.__cause__ = err
    return wrapped
