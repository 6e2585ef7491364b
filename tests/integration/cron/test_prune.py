"""The pruning jobs on the real fingerprint database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sqlalchemy import delete, func, select

from acoustid_stack.config import Settings
from acoustid_stack.cron.jobs import IMPORT_APPLIED_RETENTION, JobContext, prune_import_applied
from acoustid_stack.cron.metrics import CronMetrics
from acoustid_stack.db.schema.fingerprint import import_applied
from acoustid_stack.submissions.connection import Reconnect, connect_nats
from acoustid_stack.submissions.databases import open_databases

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

# far above any real submission id, so the rows are this test's own
OLD, RECENT = 2**62, 2**62 + 1


@pytest.fixture
async def ctx(migrated_settings: Settings) -> AsyncIterator[JobContext]:
    databases = open_databases(migrated_settings.database, pool_size=2)
    redis = Redis.from_url(migrated_settings.redis.url())
    nc = await connect_nats(migrated_settings.nats, reconnect=Reconnect.FAIL_FAST)
    try:
        yield JobContext(
            settings=migrated_settings,
            databases=databases,
            redis=redis,
            js=nc.jetstream(),
            metrics=CronMetrics(CollectorRegistry()),
        )
    finally:
        async with databases.fingerprint.begin() as conn:
            await conn.execute(
                delete(import_applied).where(import_applied.c.submission_id.in_([OLD, RECENT]))
            )
        await nc.close()
        await redis.aclose()
        await databases.dispose()


async def test_import_markers_older_than_the_retention_are_pruned_and_recent_ones_kept(
    ctx: JobContext,
) -> None:
    a = import_applied
    async with ctx.databases.fingerprint.begin() as conn:
        marker = {"fingerprint_id": 1, "track_id": 1}
        await conn.execute(
            a.insert().values(
                submission_id=OLD, created=func.now() - IMPORT_APPLIED_RETENTION * 1.5, **marker
            )
        )
        await conn.execute(a.insert().values(submission_id=RECENT, **marker))

    await prune_import_applied(ctx)

    async with ctx.databases.fingerprint.connect() as conn:
        left = (await conn.scalars(select(a.c.submission_id).where(a.c.submission_id >= OLD))).all()
    assert list(left) == [RECENT]
