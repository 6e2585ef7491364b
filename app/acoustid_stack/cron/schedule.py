"""Runs due jobs of a table; a failing job is logged and tried again at its next slot."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from acoustid_stack.cron.jobs import Job, JobContext, JobFailed
from acoustid_stack.cron.metrics import CronMetrics

logger = logging.getLogger(__name__)


class Scheduler:
    """Keeps each job's next run time. Every job is due at once after `reset` (a new leader
    does not know when the previous one last ran)."""

    def __init__(
        self,
        jobs: Sequence[Job],
        *,
        metrics: CronMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._jobs = jobs
        self._metrics = metrics
        self._clock = clock
        self._next_run: dict[str, float] = {}

    def reset(self) -> None:
        self._next_run = {job.name: 0.0 for job in self._jobs}

    def seconds_until_next(self) -> float:
        if not self._next_run:
            return 0.0
        return max(0.0, min(self._next_run.values()) - self._clock())

    async def run_due(self, ctx: JobContext) -> list[str]:
        """Run every job whose time has come, one after another; the names run."""
        ran = []
        for job in self._jobs:
            if self._next_run.get(job.name, 0.0) > self._clock():
                continue
            started = self._clock()
            try:
                result = await job.run(ctx)
            except Exception as exc:
                if isinstance(exc, JobFailed):
                    logger.error("cron job %s failed: %s; next try in %s", job.name, exc, job.every)
                else:
                    logger.exception("cron job %s failed; next try in %s", job.name, job.every)
                self._metrics.runs.labels(job.name, "error").inc()
            else:
                logger.info("cron job %s done: %s", job.name, result)
                self._metrics.runs.labels(job.name, "ok").inc()
            self._metrics.duration.labels(job.name).observe(self._clock() - started)
            self._next_run[job.name] = started + job.every.total_seconds()
            ran.append(job.name)
        return ran
