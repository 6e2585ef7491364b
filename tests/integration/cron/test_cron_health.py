"""Cron's `/_health` (on its metrics port) proves the standby's and the leader's loops turn:
healthy while waiting for the lock and while leading, 503 while a job never returns."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from acoustid_stack.config import Settings
from acoustid_stack.cron.jobs import Job, JobContext
from acoustid_stack.cron.metrics import CronMetrics
from acoustid_stack.cron.service import run_cron
from acoustid_stack.local.process import free_port
from acoustid_stack.progress import HEALTH_PATH, Heartbeat, start_health_server

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

MAX_AGE = 1.5
RETRY = 0.2


def health(url: str) -> int:
    return httpx.get(url + HEALTH_PATH, timeout=5).status_code


async def until(condition: Callable[[], bool], what: str, deadline: float = 30.0) -> None:
    ends = time.monotonic() + deadline
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < ends, f"timed out waiting until {what}"
        await asyncio.sleep(0.1)


class Cron:
    """`run_cron` in this process with one job, its heartbeat served as `run cron` serves it."""

    def __init__(self, settings: Settings, job: Job) -> None:
        self.heartbeat = Heartbeat(MAX_AGE)
        self.server = start_health_server("127.0.0.1", 0, self.heartbeat)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.metrics = CronMetrics(CollectorRegistry())
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(
            run_cron(
                settings,
                stop=self.stop,
                jobs=[job],
                retry_interval=RETRY,
                metrics=self.metrics,
                heartbeat=self.heartbeat,
            )
        )

    def leading(self) -> bool:
        return bool(self.metrics.leader._value.get())

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, timeout=15)
        self.server.shutdown()


async def test_a_standby_and_an_idle_leader_stay_healthy_and_a_stuck_job_turns_503(
    migrated_settings: Settings,
) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def blocks(ctx: JobContext) -> object:
        started.set()
        await release.wait()
        return "released"

    async def quick(ctx: JobContext) -> object:
        return "done"

    leader = Cron(migrated_settings, Job("quick", timedelta(hours=1), quick))
    standby: Cron | None = None
    try:
        await until(leader.leading, "the first cron leads")
        standby = Cron(migrated_settings, Job("blocks", timedelta(seconds=1), blocks))
        for _ in range(4):  # twice the limit: both loops keep turning
            await asyncio.sleep(MAX_AGE / 2)
            assert health(leader.url) == 200
            assert health(standby.url) == 200
        assert not standby.leading()

        await leader.close()  # the lock's session closes: the standby takes over
        await asyncio.wait_for(started.wait(), timeout=30)
        await until(lambda: health(standby.url) == 503, "the stuck leader is 503")
        release.set()
        await until(lambda: health(standby.url) == 200, "it is healthy again")
    finally:
        release.set()
        if not leader.task.done():
            await leader.close()
        if standby is not None:
            await standby.close()


def test_the_cron_process_serves_health_and_backlog_metrics_on_its_metrics_port(
    start_cron: Callable[..., Any],
) -> None:
    port = free_port()
    cron = start_cron("--metrics-port", str(port), "--retry-interval", "0.2")
    url = f"http://127.0.0.1:{port}"
    ends = time.monotonic() + 60
    while "cron job count_pending done" not in cron.output():
        assert time.monotonic() < ends, cron.output()
        time.sleep(0.2)
    assert health(url) == 200
    metrics = httpx.get(url + "/metrics", timeout=5).text
    assert "acoustid_submissions_pending " in metrics
    assert "acoustid_submissions_oldest_pending_age_seconds " in metrics
