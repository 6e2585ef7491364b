"""LookupStats counts in-process and adds the counts to a real Redis: exact counts, kept
through a Redis outage, the last ones written when the api stops."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.asyncio import Redis

from acoustid_stack.api.stats import LookupStats
from acoustid_stack.cron.stats import lookup_counter, user_agent_counter
from acoustid_stack.local.process import free_port
from acoustid_stack.local.servers import start_redis
from acoustid_stack.local.services import Services

pytestmark = pytest.mark.integration

APPLICATION = 7


async def counts(redis: Redis, prefix: str) -> tuple[int, int, int]:
    """(hits, misses, requests of agent "beets" from 192.0.2.1) of APPLICATION now."""
    now = datetime.now(UTC)
    found = []
    for key, field in (
        lookup_counter(prefix, application_id=APPLICATION, hit=True, moment=now),
        lookup_counter(prefix, application_id=APPLICATION, hit=False, moment=now),
        user_agent_counter(
            prefix, application_id=APPLICATION, user_agent="beets", ip="192.0.2.1", moment=now
        ),
    ):
        found.append(int(await redis.hget(key, field) or 0))
    return found[0], found[1], found[2]


def record(stats: LookupStats, hits: int, misses: int) -> None:
    for hit in [True] * hits + [False] * misses:
        stats.record(application_id=APPLICATION, hit=hit, user_agent="beets", ip="192.0.2.1")


def test_counts_reach_redis_within_a_second_and_the_last_ones_when_stopped(
    services: Services,
) -> None:
    prefix = f"counting-{secrets.token_hex(4)}:"

    async def scenario() -> None:
        redis = Redis.from_url(services.redis().url())
        stats = LookupStats(redis=redis, key_prefix=prefix)
        running = asyncio.create_task(stats.run())
        try:
            record(stats, hits=3, misses=2)
            assert await counts(redis, prefix) == (0, 0, 0)  # nothing sent per lookup
            await asyncio.sleep(1.5)
            assert await counts(redis, prefix) == (3, 2, 5)
            record(stats, hits=1, misses=0)
            stats.stop()
            await running
            assert await counts(redis, prefix) == (4, 2, 6)
        finally:
            async for key in redis.scan_iter(match=f"{prefix}*"):
                await redis.delete(key)
            await redis.aclose()

    asyncio.run(scenario())


def test_counts_are_kept_while_redis_is_down_and_added_once_it_is_back(tmp_path: Path) -> None:
    port = free_port()

    async def scenario() -> None:
        redis = Redis(host="127.0.0.1", port=port, socket_timeout=1)
        stats = LookupStats(redis=redis)
        record(stats, hits=2, misses=1)
        await stats.flush()  # nothing listens on the port yet: the flush fails
        record(stats, hits=1, misses=0)
        process, _ = start_redis(tmp_path / "redis", port, log_path=tmp_path / "redis.log")
        try:
            await stats.flush()
            assert await counts(redis, "") == (3, 1, 4)
            await stats.flush()  # nothing new: nothing counted twice
            assert await counts(redis, "") == (3, 1, 4)
        finally:
            await redis.aclose()
            process.stop()

    asyncio.run(scenario())
