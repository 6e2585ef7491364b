"""Lookup and user-agent counters in Redis, flushed to the app database by cron.

The key layout lives with the flush, in `cron.stats`; this is the api's failure policy on
top: counting is best effort, a Redis error is logged and the lookup goes on.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from acoustid_stack.cron.stats import record_lookup, record_user_agent

logger = logging.getLogger(__name__)


class LookupStats:
    def __init__(self, *, redis: Redis, key_prefix: str = "") -> None:
        self._redis = redis
        self._prefix = key_prefix

    async def record(self, *, application_id: int, hit: bool, user_agent: str, ip: str) -> None:
        """Count one lookup request (a hit when any of its searches found a track)."""
        try:
            # one round trip: the pipeline queues both increments (it is a Redis client too)
            async with self._redis.pipeline(transaction=False) as pipe:
                await record_lookup(
                    pipe, key_prefix=self._prefix, application_id=application_id, hit=hit
                )
                await record_user_agent(
                    pipe,
                    key_prefix=self._prefix,
                    application_id=application_id,
                    user_agent=user_agent,
                    ip=ip,
                )
                await pipe.execute()
        except RedisError as exc:
            logger.warning("lookup statistics not counted, Redis failed: %s", exc)
