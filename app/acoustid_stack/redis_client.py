"""The one way every part reaches Redis: the configured server, or the master via Sentinel.

With `[redis] sentinels` set the client asks the sentinels for the master's address on every
new connection. After a failover the next command therefore reaches the promoted replica
without a restart: connections to the dead master fail and are dropped, and one to a demoted
master is dropped on its first READONLY answer (redis-py's sentinel-managed connections).
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from acoustid_stack.config import RedisSettings


def _options(settings: RedisSettings, timeout: float, retries: int | None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "password": settings.password,
        "db": settings.db,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
    }
    if retries is not None:
        options["retry"] = Retry(NoBackoff(), retries)
    return options


def connect_redis(
    settings: RedisSettings, *, timeout: float, retries: int | None = None
) -> redis.asyncio.Redis:
    """An asyncio client; connects lazily. `retries` replaces redis-py's default retries
    (which back off for seconds) after a failed command; fail-open callers pass 0."""
    options = _options(settings, timeout, retries)
    if not settings.sentinels:
        return redis.asyncio.Redis(host=settings.host, port=settings.port, **options)
    sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        settings.sentinels, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    master: redis.asyncio.Redis = sentinel.master_for(settings.sentinel_master, **options)
    return master


def connect_redis_sync(settings: RedisSettings, *, timeout: float) -> redis.Redis:
    """A blocking client for commands run by operators (health checks, backups)."""
    options = _options(settings, timeout, None)
    if not settings.sentinels:
        return redis.Redis(host=settings.host, port=settings.port, **options)
    sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        settings.sentinels, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    master: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        settings.sentinel_master, **options
    )
    return master
