"""Per-application, global and per-IP request rates in Redis (reference §1.5 and §4.5).

Sliding window of 20 s in four 5-s slots: a request increments its slot and is rejected
(and its increment undone) when the four slots together exceed rate × 20.

Failure policy: fail open. A Redis outage disables rate limiting, never the API; each
failure is logged at WARNING so the outage is visible.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

from acoustid_stack.api import errors
from acoustid_stack.config import RateLimitSettings

WINDOW_SECONDS: Final = 20
SLOTS: Final = 4
SLOT_SECONDS: Final = WINDOW_SECONDS / SLOTS
KEY_TTL_SECONDS: Final = 25

logger = logging.getLogger(__name__)


class RateLimiter:
    def __init__(
        self,
        *,
        redis: Redis,
        settings: RateLimitSettings,
        key_prefix: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._settings = settings
        self._prefix = f"{key_prefix}rl:"
        self._clock = clock

    async def check(self, *, client_ip: str, application_id: int | None) -> None:
        """Count one request; error 14 (HTTP 429) naming the bucket's rate when over a limit.

        Buckets in upstream's order: the application (its configured rate, else the default),
        the global one, then the client IP unless the application has a configured rate.
        """
        buckets: list[tuple[str, float]] = []
        configured = None
        if application_id is not None:
            configured = self._settings.for_application(application_id)
            rate = configured if configured is not None else self._settings.application_rate
            buckets.append((f"app:{application_id}", rate))
        buckets.append(("global", self._settings.global_rate))
        if configured is None:
            buckets.append((f"ip:{client_ip}", self._settings.for_ip(client_ip)))
        for bucket, rate in buckets:
            if not await self._allow(bucket, rate):
                raise errors.too_many_requests(rate)

    async def _allow(self, bucket: str, rate: float) -> bool:
        slot = int(self._clock() / SLOT_SECONDS)
        current = f"{self._prefix}{bucket}:{slot}"
        previous = [f"{self._prefix}{bucket}:{slot - n}" for n in range(1, SLOTS)]
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(current)
                pipe.expire(current, KEY_TTL_SECONDS)
                pipe.mget(previous)
                count, _, earlier = await pipe.execute()
            total = int(count) + sum(int(value) for value in earlier if value is not None)
            if total <= rate * WINDOW_SECONDS:
                return True
            await self._redis.decr(current)
        except RedisError as exc:
            logger.warning("rate limiting skipped, Redis failed: %s", exc)
            return True
        return False
