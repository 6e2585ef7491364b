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
        over = await self._count(buckets)
        if over is not None:
            raise errors.too_many_requests(buckets[over][1])

    async def _count(self, buckets: list[tuple[str, float]]) -> int | None:
        """Count the request in every bucket in ONE Redis round trip; the position of the
        first bucket over its limit, or None.

        Upstream counts bucket after bucket and stops at the first one over its limit, undoing
        that increment. Counting all at once and then undoing the increments from that bucket
        on leaves Redis exactly as upstream would (an extra round trip, only when refusing).
        """
        slot = int(self._clock() / SLOT_SECONDS)
        keys = [f"{self._prefix}{bucket}:{slot}" for bucket, _ in buckets]
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for (bucket, _), current in zip(buckets, keys, strict=True):
                    pipe.incr(current)
                    pipe.expire(current, KEY_TTL_SECONDS)
                    pipe.mget([f"{self._prefix}{bucket}:{slot - n}" for n in range(1, SLOTS)])
                replies = await pipe.execute()
            over = None
            for position, (_, rate) in enumerate(buckets):
                count, _, earlier = replies[3 * position : 3 * position + 3]
                total = int(count) + sum(int(value) for value in earlier if value is not None)
                if total > rate * WINDOW_SECONDS:
                    over = position
                    break
            if over is not None:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for current in keys[over:]:
                        pipe.decr(current)
                    await pipe.execute()
        except RedisError as exc:
            logger.warning("rate limiting skipped, Redis failed: %s", exc)
            return None
        return over
