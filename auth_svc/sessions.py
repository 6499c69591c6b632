"""Login sessions in Redis, per the spec's key structure.

    ossa:session:{sessionId}         HASH  user_id, role, api_key_id, jti, token_expires_at,
                                           created_at, expires_at (epoch seconds); TTL 3600 s
    ossa:user:{userId}:sessions      SET   the user's session ids; its TTL follows the newest session

A session records the `jti` of the JWT its login returned, so ending the session revokes that
token. Ids of sessions that expired on their own linger in the user's set until the set is read
(then they are dropped) or expires.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from ossa_runtime import keys


@dataclass(frozen=True)
class Session:
    id: str
    user_id: str
    role: str
    api_key_id: str
    jti: str
    token_expires_at: int
    created_at: int
    expires_at: int

    def to_hash(self) -> dict[str, str]:
        return {
            "user_id": self.user_id,
            "role": self.role,
            "api_key_id": self.api_key_id,
            "jti": self.jti,
            "token_expires_at": str(self.token_expires_at),
            "created_at": str(self.created_at),
            "expires_at": str(self.expires_at),
        }

    @classmethod
    def from_hash(cls, session_id: str, raw: Mapping[Any, Any]) -> Session | None:
        data = {str(k): str(v) for k, v in raw.items()}
        try:
            return cls(
                id=session_id,
                user_id=data["user_id"],
                role=data["role"],
                api_key_id=data.get("api_key_id", ""),
                jti=data["jti"],
                token_expires_at=int(data["token_expires_at"]),
                created_at=int(data["created_at"]),
                expires_at=int(data["expires_at"]),
            )
        except (KeyError, ValueError):
            return None  # a half-written or foreign hash: treat as no session


def new_session_id() -> str:
    return secrets.token_urlsafe(24)


class SessionStore:
    def __init__(self, redis: aioredis.Redis, ttl_seconds: int) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds

    async def create(self, *, user_id: str, role: str, api_key_id: str, jti: str, token_expires_at: int) -> Session:
        now = int(time.time())
        session = Session(
            id=new_session_id(),
            user_id=user_id,
            role=role,
            api_key_id=api_key_id,
            jti=jti,
            token_expires_at=token_expires_at,
            created_at=now,
            expires_at=now + self.ttl_seconds,
        )
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.session(session.id), mapping=session.to_hash())  # type: ignore[arg-type]
            pipe.expire(keys.session(session.id), self.ttl_seconds)
            pipe.sadd(keys.user_sessions(user_id), session.id)
            pipe.expire(keys.user_sessions(user_id), self.ttl_seconds)
            await pipe.execute()
        return session

    async def get(self, session_id: str) -> Session | None:
        data = await self.redis.hgetall(keys.session(session_id))
        return Session.from_hash(session_id, data) if data else None

    async def of_user(self, user_id: str) -> list[Session]:
        """The user's live sessions (expired ids are dropped from the set on the way)."""
        ids = sorted(str(i) for i in await self.redis.smembers(keys.user_sessions(user_id)))
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.hgetall(keys.session(session_id))
            hashes = await pipe.execute()
        live, gone = [], []
        for session_id, data in zip(ids, hashes, strict=True):
            session = Session.from_hash(session_id, data) if data else None
            if session is None:
                gone.append(session_id)
            else:
                live.append(session)
        if gone:
            await self.redis.srem(keys.user_sessions(user_id), *gone)
        return live

    async def end(self, session: Session) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.session(session.id))
            pipe.srem(keys.user_sessions(session.user_id), session.id)
            await pipe.execute()
