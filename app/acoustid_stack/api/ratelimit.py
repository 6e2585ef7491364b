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

# Upstream's counting, server-side: per bucket (KEYS: its current slot, then the SLOTS - 1
# earlier ones; ARGV: each bucket's limit, then the TTL) increment the current slot, and stop
# at the first bucket whose window is over its limit, undoing that increment. Returns the
# bucket's 1-based position, or 0. One call instead of a pipeline of 3 commands per bucket:
# a tenth of the api's CPU per lookup went into redis-py packing and parsing those.
_COUNT = f"""
local slots = {SLOTS}
local buckets = #KEYS / slots
for b = 1, buckets do
  local first = (b - 1) * slots
  local total = redis.call('INCR', KEYS[first + 1])
  redis.call('EXPIRE', KEYS[first + 1], ARGV[buckets + 1])
  for n = 2, slots do
    total = total + (tonumber(redis.call('GET', KEYS[first + n])) or 0)
  end
  if total > tonumber(ARGV[b]) then
    redis.call('DECR', KEYS[first + 1])
    return b
  end
end
return 0
"""


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
        self._script = redis.register_script(_COUNT)

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
        """Count the request bucket after bucket in ONE Redis call (a script); the position
        of the first bucket over its limit, whose increment is undone, or None."""
        slot = int(self._clock() / SLOT_SECONDS)
        keys = [f"{self._prefix}{bucket}:{slot - n}" for bucket, _ in buckets for n in range(SLOTS)]
        limits = [rate * WINDOW_SECONDS for _, rate in buckets]
        try:
            over = int(await self._script(keys=keys, args=[*limits, KEY_TTL_SECONDS]))
        except RedisError as exc:
            logger.warning("rate limiting skipped, Redis failed: %s", exc)
            return None
        return over - 1 if over else None
