"""Lookup and user-agent counters: counted in-process, added to Redis every second, flushed to
the app database by cron.

The key layout lives with the flush, in `cron.stats`. A Redis call per lookup cost more api
CPU than the counting itself, so each process adds its counts up in memory and `run` adds
them to Redis in one transaction per second (and once more when the process stops: only
counts that Redis refuses then too are lost), so Redis holds every lookup a second later.

Failure policy: counting never fails a lookup; a Redis error is logged and the counts are
kept for the next flush, up to MAX_PENDING counters (one per hour, application and hit/miss,
or day, application, user agent and address); beyond that a Redis outage drops new counters,
logged, rather than grow without end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

from acoustid_stack.cron.stats import lookup_counter, user_agent_counter
from acoustid_stack.db import text_limits

logger = logging.getLogger(__name__)

FLUSH_SECONDS: Final = 1.0
MAX_PENDING: Final = 100_000
_HOUR: Final = 3600
_DAY: Final = 86400

#: (hour since the epoch, application id, hit)
LookupKey = tuple[int, int, bool]
#: (day since the epoch, application id, user agent, address)
AgentKey = tuple[int, int, str, str]


class LookupStats:
    def __init__(self, *, redis: Redis, key_prefix: str = "") -> None:
        self._redis = redis
        self._prefix = key_prefix
        self._lookups: Counter[LookupKey] = Counter()
        self._agents: Counter[AgentKey] = Counter()
        self._dropped = 0
        self._stopping = asyncio.Event()

    def record(self, *, application_id: int, hit: bool, user_agent: str, ip: str) -> None:
        """Count one lookup request (a hit when any of its searches found a track)."""
        now = int(time.time())
        lookup = (now // _HOUR, application_id, hit)
        # cut as the counter's field will be: a long agent costs no more memory than a short
        agent = (
            now // _DAY,
            application_id,
            user_agent[: text_limits.USER_AGENT],
            ip[: text_limits.IP],
        )
        if len(self._lookups) + len(self._agents) >= MAX_PENDING and (
            lookup not in self._lookups or agent not in self._agents
        ):
            self._dropped += 1
            return
        self._lookups[lookup] += 1
        self._agents[agent] += 1

    async def run(self) -> None:
        """Flush every FLUSH_SECONDS until `stop`, then once more. Never cancelled inside a
        flush: a transaction cut after EXEC was sent would be counted again."""
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), FLUSH_SECONDS)
            await self.flush()

    def stop(self) -> None:
        self._stopping.set()

    async def flush(self) -> None:
        """Add the counts so far to Redis in one transaction; kept for the next flush when
        Redis fails."""
        if self._dropped:
            logger.warning(
                "%d lookups not counted: %d counters waiting for Redis", self._dropped, MAX_PENDING
            )
            self._dropped = 0
        if not self._lookups and not self._agents:
            return
        lookups, agents = self._lookups, self._agents
        self._lookups, self._agents = Counter(), Counter()
        try:
            # MULTI/EXEC: all counts or none, so a failed flush can be repeated exactly
            async with self._redis.pipeline(transaction=True) as pipe:
                for (hour, application_id, hit), count in lookups.items():
                    key, field = lookup_counter(
                        self._prefix,
                        application_id=application_id,
                        hit=hit,
                        moment=datetime.fromtimestamp(hour * _HOUR, UTC),
                    )
                    pipe.hincrby(key, field, count)
                for (day, application_id, user_agent, ip), count in agents.items():
                    key, field = user_agent_counter(
                        self._prefix,
                        application_id=application_id,
                        user_agent=user_agent,
                        ip=ip,
                        moment=datetime.fromtimestamp(day * _DAY, UTC),
                    )
                    pipe.hincrby(key, field, count)
                await pipe.execute()
        except RedisError as exc:
            logger.warning("lookup statistics kept for the next flush, Redis failed: %s", exc)
            self._lookups.update(lookups)
            self._agents.update(agents)
