"""The cron process: wait to be leader, run due jobs while leader, stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from acoustid_stack.config import Settings
from acoustid_stack.cron.jobs import Job, JobContext, jobs_for
from acoustid_stack.cron.leader import LeaderElection
from acoustid_stack.cron.metrics import CronMetrics
from acoustid_stack.cron.schedule import Scheduler
from acoustid_stack.lifecycle import serve_until_signalled, until_stopped
from acoustid_stack.progress import Heartbeat, beating
from acoustid_stack.redis_client import connect_redis
from acoustid_stack.sizing import PROCESS_CONNECTIONS
from acoustid_stack.submissions.connection import Reconnect, close_nats, connect_nats
from acoustid_stack.submissions.databases import open_databases

logger = logging.getLogger(__name__)

#: a Redis that does not answer within this time fails the job run (the next run retries)
REDIS_TIMEOUT_SECONDS = 10.0


async def run_cron(
    settings: Settings,
    *,
    stop: asyncio.Event,
    jobs: Sequence[Job] | None = None,
    retry_interval: float = 5.0,
    metrics: CronMetrics | None = None,
    heartbeat: Heartbeat | None = None,
) -> None:
    """Run until `stop` is set. While leader, the lock is re-checked every `retry_interval`
    and between jobs; a leader that loses its database session stops running jobs.
    `jobs` default to those the settings switch on (`jobs_for`). NATS: waited for at start,
    reconnected forever after (`Reconnect.FOREVER`); a job that finds it away, or finds no
    stream it can create (no JetStream leader yet), fails that run and the next run retries.
    `heartbeat` is beaten by every round of the standby's and of the leader's loop: a job
    that never returns stops it (`/_health`).
    """
    metrics = metrics or CronMetrics()
    heartbeat = heartbeat or Heartbeat(max_age=float("inf"))
    jobs = jobs_for(settings, metrics) if jobs is None else jobs
    # waiting for NATS at start is an outage, not a stuck loop: healthy meanwhile
    connecting = connect_nats(settings.nats, reconnect=Reconnect.FOREVER)
    nc = await until_stopped(beating(connecting, heartbeat), stop)
    if nc is None:
        return
    election = LeaderElection(
        conninfo=settings.database.app.conninfo(), retry_interval=retry_interval
    )
    databases = open_databases(settings.database, pool_size=PROCESS_CONNECTIONS["cron"].engine)
    redis = connect_redis(settings.redis, timeout=REDIS_TIMEOUT_SECONDS)
    try:
        ctx = JobContext(
            settings=settings,
            databases=databases,
            redis=redis,
            js=nc.jetstream(),
            metrics=metrics,
        )
        scheduler = Scheduler(jobs, metrics=metrics)
        logger.info("cron started; waiting for the leader lock")
        while await election.wait_until_leader(stop, heartbeat=heartbeat):
            logger.info("became the cron leader")
            metrics.leader.set(1)
            scheduler.reset()
            while not stop.is_set() and await election.still_leader():
                heartbeat.beat()
                await scheduler.run_due(ctx)
                wait = min(retry_interval, scheduler.seconds_until_next())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=wait)
            metrics.leader.set(0)
            logger.info("no longer the cron leader")
    finally:
        await election.resign()
        await close_nats(nc)
        await redis.aclose()
        await databases.dispose()


def serve(
    settings: Settings,
    *,
    retry_interval: float = 5.0,
    metrics_address: tuple[str, int] | None,
    health_max_age: float,
) -> None:
    """`acoustid-stack run cron`: blocks until SIGTERM or SIGINT; metrics and `/_health`
    (the standby's or leader's loop turned within `health_max_age` seconds) on (host, port)."""
    heartbeat = Heartbeat(health_max_age)
    serve_until_signalled(
        lambda stop: run_cron(
            settings, stop=stop, retry_interval=retry_interval, heartbeat=heartbeat
        ),
        heartbeat=heartbeat,
        metrics_address=metrics_address,
    )
