"""Lookup statistics from Redis into PostgreSQL, and the daily counters."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from redis.asyncio import Redis
from sqlalchemy import select

from acoustid_stack.config import Settings
from acoustid_stack.cron import stats
from acoustid_stack.db.schema import app as app_db
from acoustid_stack.submissions.databases import Databases, open_databases

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

NOON = datetime(2030, 5, 17, 12, 30, tzinfo=UTC)


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

    moved = await stats.flush_lookup_stats(redis=redis, app=databases.app, key_prefix=key_prefix)

    assert moved == 2
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

    t = app_db.stats_user_agents
    async with databases.app.connect() as conn:
        rows = (
            await conn.execute(
                select(t.c.user_agent, t.c.ip, t.c.count).where(
                    t.c.application_id == application_id
                )
            )
        ).all()
    assert [tuple(row) for row in rows] == [("beets/1.6 (chroma: yes)", "::1", 2)]


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
