"""Probes with a deadline on the real PostgreSQL: a pool never holds more than its bound."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable

import psycopg
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from acoustid_stack.config import Settings
from acoustid_stack.db.deadline import within

PROBES = 300


def backends(conninfo: str, application: str) -> int:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (application,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def peak_backends(
    settings: Settings,
    give_up: Callable[[Awaitable[object], float], Awaitable[object]],
    *,
    probes: int = PROBES,
) -> tuple[int, int]:
    """(most backends of a one-connection pool seen at once, timed-out probes) over up to
    `probes` probes given up after 0.5–10 ms, each while connecting, querying or waiting; the
    count stops early once the pool is seen over its bound."""
    target = settings.database.app
    conninfo = target.conninfo("postgres")
    application = f"deadline-{uuid.uuid4().hex[:8]}"
    url = make_url(target.sqlalchemy_url("postgres")).update_query_dict(
        {"application_name": application}
    )
    random.seed(7)

    async def run() -> tuple[int, int]:
        engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=True)

        async def probe() -> object:
            async with engine.connect() as conn:
                return await conn.scalar(text("SELECT 1"))

        peak = timeouts = 0
        try:
            for _ in range(probes):
                try:
                    await give_up(probe(), random.uniform(0.0005, 0.01))
                except TimeoutError:
                    timeouts += 1
                peak = max(peak, backends(conninfo, application))
                if peak > 1:
                    break
        finally:
            await engine.dispose()
        return peak, timeouts

    return asyncio.run(run())


def test_probes_given_up_never_open_more_connections_than_the_pool_holds(
    test_settings: Settings,
) -> None:
    peak, timeouts = peak_backends(test_settings, within)
    assert timeouts > PROBES // 10  # the deadline did cut probes short
    assert peak == 1


def test_cancelling_instead_does_exceed_the_bound(test_settings: Settings) -> None:
    """Why `within` exists: the same probes under asyncio.wait_for leave connections behind."""
    peak, timeouts = peak_backends(test_settings, asyncio.wait_for, probes=10 * PROBES)
    assert timeouts > 0
    assert peak > 1


def test_the_caller_gets_the_result_or_a_timeout_while_the_call_runs_to_its_end() -> None:
    async def scenario() -> tuple[str, bool, bool]:
        release, finished = asyncio.Event(), asyncio.Event()

        async def slow() -> str:
            await release.wait()
            finished.set()
            return "late"

        quick = await within(asyncio.sleep(0, result="quick"), 1.0)
        with pytest.raises(TimeoutError):
            await within(slow(), 0.01)
        finished_at_timeout = finished.is_set()
        release.set()
        await asyncio.wait_for(finished.wait(), 5)
        return quick, finished_at_timeout, finished.is_set()

    quick, finished_at_timeout, finished = asyncio.run(scenario())
    assert quick == "quick"
    assert not finished_at_timeout
    assert finished
