"""The cron jobs and their schedule: one table, read top to bottom.

Every job is safe to run twice (a failover can overlap the old leader's last run with the
new leader's first): re-publishing is deduplicated, stats flushes subtract what they read,
`update_stats` overwrites today's value, pruning deletes by age, index snapshots are due by
the age of the newest copy on disk.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from nats.js import JetStreamContext
from redis.asyncio import Redis
from sqlalchemy import Column, Table, delete, func, select

from acoustid_stack.config import Settings
from acoustid_stack.cron import stats
from acoustid_stack.cron.metrics import CronMetrics
from acoustid_stack.cron.snapshots import IndexSnapshots
from acoustid_stack.db.schema.fingerprint import fpindex_changelog, import_applied
from acoustid_stack.submissions.databases import Databases
from acoustid_stack.submissions.outbox import republish_lost
from acoustid_stack.submissions.store import pending_backlog

logger = logging.getLogger(__name__)

#: The index catches up from the changelog after a snapshot restore; snapshots are taken
#: daily, so two months is generous.
CHANGELOG_RETENTION = timedelta(days=60)
#: A crashed import's retry reads its marker within minutes (pending submissions are
#: re-published every minute); a week covers a worker fleet down for days.
IMPORT_APPLIED_RETENTION = timedelta(days=7)
PRUNE_BATCH = 10_000


@dataclass(frozen=True)
class JobContext:
    settings: Settings
    databases: Databases
    redis: Redis
    js: JetStreamContext
    metrics: CronMetrics


JobFunction = Callable[[JobContext], Awaitable[object]]


@dataclass(frozen=True)
class Job:
    name: str
    every: timedelta
    run: JobFunction


class JobFailed(Exception):
    """A failure the job has explained in its log already: the scheduler logs the message
    without a traceback."""


async def republish_pending(ctx: JobContext) -> object:
    ids = await republish_lost(ingest=ctx.databases.ingest, js=ctx.js, settings=ctx.settings.nats)
    if ids:
        logger.warning("re-published %d pending submissions whose message was lost", len(ids))
    return len(ids)


async def count_pending(ctx: JobContext) -> object:
    """The backlog for alerts and the dashboard: a growing count, or an old oldest one, is
    an import that does not keep up or does not happen."""
    async with ctx.databases.ingest.connect() as conn:
        count, age = await pending_backlog(conn)
    ctx.metrics.pending.set(count)
    ctx.metrics.oldest_pending_age.set(age)
    return f"{count} pending, oldest {age:.0f} s"


async def flush_lookup_stats(ctx: JobContext) -> object:
    return await _flush_stats(ctx, stats.flush_lookup_stats)


async def flush_user_agent_stats(ctx: JobContext) -> object:
    return await _flush_stats(ctx, stats.flush_user_agent_stats)


async def _flush_stats(ctx: JobContext, flush: Callable[..., Awaitable[stats.Flushed]]) -> object:
    flushed = await flush(
        redis=ctx.redis, app=ctx.databases.app, key_prefix=ctx.settings.redis.key_prefix
    )
    ctx.metrics.stats_skipped.labels(flushed.table).inc(flushed.skipped)
    return flushed


async def update_stats(ctx: JobContext) -> object:
    db = ctx.databases
    return await stats.update_stats(app=db.app, fingerprint=db.fingerprint, ingest=db.ingest)


async def prune_changelog(ctx: JobContext) -> object:
    return await _prune(ctx, fpindex_changelog, fpindex_changelog.c.id, CHANGELOG_RETENTION)


async def prune_import_applied(ctx: JobContext) -> object:
    return await _prune(
        ctx, import_applied, import_applied.c.submission_id, IMPORT_APPLIED_RETENTION
    )


async def _prune(ctx: JobContext, table: Table, key: Column[int], retention: timedelta) -> int:
    """Delete fingerprint-database rows whose `created` is older than `retention`, in
    batches (short transactions); how many."""
    total = 0
    while True:
        oldest = (
            select(key)
            .where(table.c.created < func.now() - retention)
            .limit(PRUNE_BATCH)
            .scalar_subquery()
        )
        async with ctx.databases.fingerprint.begin() as conn:
            deleted = (await conn.execute(delete(table).where(key.in_(oldest)))).rowcount
        total += deleted
        if deleted < PRUNE_BATCH:
            return total


JOBS: tuple[Job, ...] = (
    Job("republish_pending", timedelta(minutes=1), republish_pending),
    Job("count_pending", timedelta(minutes=1), count_pending),
    Job("flush_lookup_stats", timedelta(minutes=1), flush_lookup_stats),
    Job("flush_user_agent_stats", timedelta(hours=1), flush_user_agent_stats),
    # hourly rather than upstream's daily 00:10: today's row stays fresh for the web page
    Job("update_stats", timedelta(hours=1), update_stats),
    Job("prune_changelog", timedelta(hours=1), prune_changelog),
    Job("prune_import_applied", timedelta(hours=1), prune_import_applied),
)


def jobs_for(settings: Settings, metrics: CronMetrics) -> tuple[Job, ...]:
    """`JOBS` plus the jobs the configuration switches on: `index_snapshots` while
    `[index] snapshot_dir` is set."""
    if not settings.index.snapshot_dir:
        return JOBS
    snapshots = IndexSnapshots.from_settings(settings.index, metrics)

    async def index_snapshots(ctx: JobContext) -> object:
        run = await snapshots.take(datetime.now(UTC))
        if run.failed:
            raise JobFailed(f"{run}: no new snapshot of {', '.join(run.failed)}")
        return run

    return (*JOBS, Job("index_snapshots", snapshots.check_every, index_snapshots))
