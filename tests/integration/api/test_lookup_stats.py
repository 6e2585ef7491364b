"""What lookups count in Redis, flushed by cron into the real app database."""

from __future__ import annotations

import asyncio
import secrets
import time

import psycopg
import pytest
from redis.asyncio import Redis
from starlette.testclient import TestClient

from acoustid_stack.config import Settings
from acoustid_stack.cron.stats import Flushed, flush_user_agent_stats
from acoustid_stack.db import text_limits
from acoustid_stack.fingerprint import encode_fingerprint
from acoustid_stack.submissions.databases import open_databases
from api_support import Keys, random_hashes

pytestmark = pytest.mark.integration


def flush(settings: Settings) -> tuple[Flushed, list[bytes]]:
    """Flush the user-agent counters as cron does; the result and the `ua:*` keys left."""

    async def run() -> tuple[Flushed, list[bytes]]:
        databases = open_databases(settings.database, pool_size=1)
        redis = Redis.from_url(settings.redis.url())
        try:
            prefix = settings.redis.key_prefix
            flushed = await flush_user_agent_stats(
                redis=redis, app=databases.app, key_prefix=prefix
            )
            return flushed, [key async for key in redis.scan_iter(match=f"{prefix}ua:*")]
        finally:
            await redis.aclose()
            await databases.dispose()

    return asyncio.run(run())


def test_a_6_kb_user_agent_is_counted_cut_and_never_blocks_the_flush(
    client: TestClient, api_settings: Settings
) -> None:
    keys = Keys(api_settings)  # an application of this test's own
    long_agent = secrets.token_urlsafe(4500)  # incompressible: its index entry would not fit
    fingerprint = encode_fingerprint(random_hashes(11))
    for agent in (long_agent, "beets/1.6"):
        response = client.post(
            "/v2/lookup",
            data={"client": keys.client_key, "duration": "120", "fingerprint": fingerprint},
            headers={"User-Agent": agent},
        )
        assert response.status_code == 200, response.text

    # the api adds its counts to Redis once a second: flush as cron does until both arrived
    skipped, rows = 0, []
    deadline = time.monotonic() + 15
    while len(rows) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        flushed, left = flush(api_settings)
        skipped += flushed.skipped
        with psycopg.connect(api_settings.database.app.conninfo()) as conn:
            rows = conn.execute(
                "SELECT user_agent, count FROM stats_user_agents WHERE application_id = %s "
                "ORDER BY user_agent",
                (keys.application_id,),
            ).fetchall()

    assert skipped == 0
    assert left == []
    assert rows == sorted([(long_agent[: text_limits.USER_AGENT], 1), ("beets/1.6", 1)])
