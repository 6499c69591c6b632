"""The Redis client every service uses (redis-py asyncio, decoded strings)."""

from __future__ import annotations

import redis.asyncio as aioredis

from ossa_runtime.settings import Settings, SettingsError


def create_redis(settings: Settings) -> aioredis.Redis:
    if not settings.redis_url:
        raise SettingsError("OSSA_REDIS_URL is not set (`ossa up` sets it for the services it starts)")
    return aioredis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=settings.health_probe_timeout_seconds * 2,
        health_check_interval=30,
        max_connections=max(32, settings.db_pool_max * 4),
    )
