"""Lookup statistics from Redis into PostgreSQL, and the daily counters."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from urllib.parse import quote

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sqlalchemy import select

from acoustid_stack.config import Settings
from acoustid_stack.cron import jobs, stats
from acoustid_stack.cron.metrics import CronMetrics
from acoustid_stack.db import text_limits
from acoustid_stack.db.schema import app as app_db
from acoustid_stack.submissions.connection import Reconnect, connect_nats
from acoustid_stack.submissions.databases import Databases, open_databases

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

NOON = datetime(2030, 5, 17, 12, 30, tzinfo=UTC)
#: no application has this id (the largest int4): its counters break the foreign key, as
#: those of an application deleted between the lookup and the flush would
NO_APPLICATION = 2**31 - 1


def long_user_agent() -> str:
    """6 KB that PostgreSQL cannot compress, as one request may send: its entry in the unique
    index of `stats_user_agents` would exceed the 2704 bytes a btree entry may have."""
    return secrets.token_urlsafe(4500)


def user_agent_field(application_id: int, user_agent: str, ip: str) -> str:
    """A `ua:<xx>` field as the api writes it (written straight into Redis by the tests, as
    an older api, or one without limits, may have left it)."""
    return f"{NOON:%Y-%m-%d}:{application_id}:{quote(user_agent, safe='')}:{quote(ip, safe='')}"


@pytest.fixture
async def databases(migrated_settings: Settings) -> AsyncIterator[Databases]:
    dbs = open_databases(migrated_settings.database, pool_size=2)
    yield dbs
    await dbs.dispose()


@pytest.fixture
async def redis(migrated_settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(migrated_settings.redis.url())
    yield client
    await client.aclose()


@pytest.fixture
def key_prefix(migrated_settings: Settings) -> str:
    """A prefix of this test's own, so flushes of other tests never see its counters."""
    return f"{migrated_settings.redis.key_prefix}{secrets.token_hex(3)}:"


@pytest.fixture
async def application_id(databases: Databases) -> int:
    async with databases.app.begin() as conn:
        account_id = await conn.scalar(
            app_db.account.insert()
            .values(name="stats", apikey=secrets.token_hex(8))
            .returning(app_db.account.c.id)
        )
        return int(
            await conn.scalar(
                app_db.application.insert()
                .values(
                    name="stats", version="1", apikey=secrets.token_hex(8), account_id=account_id
                )
                .returning(app_db.application.c.id)
            )
        )


async def lookup_rows(
    databases: Databases, application_id: int
) -> list[tuple[date, int, int, int]]:
    t = app_db.stats_lookups
    async with databases.app.connect() as conn:
        rows = await conn.execute(
            select(t.c.date, t.c.hour, t.c.count_hits, t.c.count_nohits).where(
                t.c.application_id == application_id
            )
        )
        return [tuple(row) for row in rows]


async def test_flushing_lookup_stats_adds_hits_and_misses_per_hour_and_empties_redis(
    databases: Databases, redis: Redis, key_prefix: str, application_id: int
) -> None:
    for hit in (True, True, True, False):
        await stats.record_lookup(
            redis, key_prefix=key_prefix, application_id=application_id, hit=hit, now=NOON
        )

    flushed = await stats.flush_lookup_stats(redis=redis, app=databases.app, key_prefix=key_prefix)

    assert (flushed.moved, flushed.skipped) == (2, 0)
    assert await lookup_rows(databases, application_id) == [(NOON.date(), 12, 3, 1)]
    assert [key async for key in redis.scan_iter(match=f"{key_prefix}*")] == []


async def test_a_second_flush_adds_to_the_stored_counts(
    databases: Databases, redis: Redis, key_prefix: str, application_id: int
) -> None:
    await stats.record_lookup(
        redis, key_prefix=key_prefix, application_id=application_id, hit=True, now=NOON
    )
    await stats.flush_lookup_stats(redis=redis, app=databases.app, key_prefix=key_prefix)
    await stats.record_lookup(
        redis, key_prefix=key_prefix, application_id=application_id, hit=False, now=NOON
    )
    await stats.flush_lookup_stats(redis=redis, app=databases.app, key_prefix=key_prefix)

    assert await lookup_rows(databases, application_id) == [(NOON.date(), 12, 1, 1)]


async def test_flushing_user_agent_stats_keeps_agents_and_addresses_with_colons(
    databases: Databases, redis: Redis, key_prefix: str, application_id: int
) -> None:
    for _ in range(2):
        await stats.record_user_agent(
            redis,
            key_prefix=key_prefix,
            application_id=application_id,
            user_agent="beets/1.6 (chroma: yes)",
            ip="::1",
            now=NOON,
        )

    await stats.flush_user_agent_stats(redis=redis, app=databases.app, key_prefix=key_prefix)

    assert await user_agent_rows(databases, application_id) == [
        ("beets/1.6 (chroma: yes)", "::1", 2)
    ]


async def user_agent_rows(databases: Databases, application_id: int) -> list[tuple[str, str, int]]:
    t = app_db.stats_user_agents
    async with databases.app.connect() as conn:
        rows = await conn.execute(
            select(t.c.user_agent, t.c.ip, t.c.count)
            .where(t.c.application_id == application_id)
            .order_by(t.c.user_agent)
        )
        return [tuple(row) for row in rows]


async def redis_keys(redis: Redis, key_prefix: str) -> list[bytes]:
    return [key async for key in redis.scan_iter(match=f"{key_prefix}*")]


async def test_user_agents_and_addresses_are_cut_to_their_limits_when_counted(
    databases: Databases, redis: Redis, key_prefix: str, application_id: int
) -> None:
    agent, address = long_user_agent(), "1" * 1000
    await stats.record_user_agent(
        redis,
        key_prefix=key_prefix,
        application_id=application_id,
        user_agent=agent,
        ip=address,
        now=NOON,
    )

    [key] = await redis_keys(redis, key_prefix)
    [field] = await redis.hkeys(key)
    assert len(field) < 400
    flushed = await stats.flush_user_agent_stats(
        redis=redis, app=databases.app, key_prefix=key_prefix
    )
    assert (flushed.moved, flushed.skipped) == (1, 0)
    assert await user_agent_rows(databases, application_id) == [
        (agent[: text_limits.USER_AGENT], address[: text_limits.IP], 1)
    ]


async def test_an_over_long_user_agent_already_in_redis_is_cut_when_flushed(
    databases: Databases, redis: Redis, key_prefix: str, application_id: int
) -> None:
    agent = long_user_agent()
    # both in one partition, and one after it: none may be held back by the long one
    await redis.hset(
        f"{key_prefix}ua:00",
        mapping={
            user_agent_field(application_id, agent, "10.0.0.1"): 2,
            user_agent_field(application_id, "beets/1.6", "10.0.0.2"): 1,
        },
    )
    await redis.hset(
        f"{key_prefix}ua:01", user_agent_field(application_id, "picard/2.9", "10.0.0.3"), 1
    )

    flushed = await stats.flush_user_agent_stats(
        redis=redis, app=databases.app, key_prefix=key_prefix
    )

    assert (flushed.moved, flushed.skipped) == (3, 0)
    assert await user_agent_rows(databases, application_id) == sorted(
        [
            (agent[: text_limits.USER_AGENT], "10.0.0.1", 2),
            ("beets/1.6", "10.0.0.2", 1),
            ("picard/2.9", "10.0.0.3", 1),
        ]
    )
    assert await redis_keys(redis, key_prefix) == []


async def test_a_row_the_database_refuses_is_dropped_and_its_partition_and_the_next_are_stored(
    databases: Databases, redis: Redis, key_prefix: str, application_id: int
) -> None:
    await redis.hset(
        f"{key_prefix}ua:00",
        mapping={
            user_agent_field(NO_APPLICATION, "gone/1.0", "10.0.0.1"): 5,
            user_agent_field(application_id, "beets/1.6", "10.0.0.2"): 1,
        },
    )
    await redis.hset(
        f"{key_prefix}ua:01", user_agent_field(application_id, "picard/2.9", "10.0.0.3"), 1
    )

    flushed = await stats.flush_user_agent_stats(
        redis=redis, app=databases.app, key_prefix=key_prefix
    )

    assert (flushed.moved, flushed.skipped) == (2, 1)
    assert await user_agent_rows(databases, application_id) == [
        ("beets/1.6", "10.0.0.2", 1),
        ("picard/2.9", "10.0.0.3", 1),
    ]
    # the refused field is gone too: it cannot fail every later flush, nor grow
    assert await redis_keys(redis, key_prefix) == []


async def test_malformed_and_refused_lookup_counters_are_dropped_and_the_others_stored(
    databases: Databases, redis: Redis, key_prefix: str, application_id: int
) -> None:
    day = f"{NOON:%Y-%m-%d}"
    await redis.hset(
        f"{key_prefix}lookups:00",
        mapping={
            "not a lookup counter": 1,
            f"{day}:12:{application_id}:maybe": 1,
            f"{day}:12:{NO_APPLICATION}:hit": 1,
            f"{day}:12:{application_id}:hit": 3,
        },
    )

    flushed = await stats.flush_lookup_stats(redis=redis, app=databases.app, key_prefix=key_prefix)

    assert (flushed.moved, flushed.skipped) == (1, 3)
    assert await lookup_rows(databases, application_id) == [(NOON.date(), 12, 3, 0)]
    assert await redis_keys(redis, key_prefix) == []


async def test_the_flush_job_counts_dropped_fields_in_its_metric(
    databases: Databases,
    redis: Redis,
    key_prefix: str,
    application_id: int,
    migrated_settings: Settings,
) -> None:
    await redis.hset(
        f"{key_prefix}ua:00", user_agent_field(NO_APPLICATION, "gone/1.0", "10.0.0.1"), 1
    )
    settings = dataclasses.replace(
        migrated_settings,
        redis=dataclasses.replace(migrated_settings.redis, key_prefix=key_prefix),
    )
    registry = CollectorRegistry()
    nc = await connect_nats(settings.nats, reconnect=Reconnect.FAIL_FAST)
    try:
        ctx = jobs.JobContext(
            settings=settings,
            databases=databases,
            redis=redis,
            js=nc.jetstream(),
            metrics=CronMetrics(registry),
        )
        await jobs.flush_user_agent_stats(ctx)
    finally:
        await nc.close()

    skipped = registry.get_sample_value("cron_stats_skipped_total", {"table": "stats_user_agents"})
    assert skipped == 1


async def test_update_stats_records_todays_counters_and_overwrites_them_when_run_again(
    databases: Databases, application_id: int
) -> None:
    db = databases
    first = await stats.update_stats(app=db.app, fingerprint=db.fingerprint, ingest=db.ingest)
    second = await stats.update_stats(app=db.app, fingerprint=db.fingerprint, ingest=db.ingest)

    assert first["application.all"] >= 1
    t = app_db.stats
    async with databases.app.connect() as conn:
        rows = dict(
            (await conn.execute(select(t.c.name, t.c.value).where(t.c.date == date.today()))).all()
        )
    # other tests of the session may have stored counters of their own today
    assert {name: rows[name] for name in second} == second
