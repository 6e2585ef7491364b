"""A JetStream outage is waited out with backoff, logged and counted once per transition."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry

from acoustid_stack.worker.metrics import WorkerMetrics
from acoustid_stack.worker.outage import Outage


def value(metric: object) -> float:
    return float(metric._value.get())  # type: ignore[attr-defined]


def test_an_outage_is_logged_and_counted_once_however_many_retries_it_takes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = WorkerMetrics(CollectorRegistry())
    outage = Outage(metrics=metrics, initial_delay=0.001, max_delay=0.004)

    async def scenario() -> None:
        stop = asyncio.Event()
        outage.over()
        for _ in range(5):
            await outage.wait(stop, "no leader")
        assert outage.ongoing
        assert value(metrics.jetstream_available) == 0
        outage.over()
        outage.over()

    with caplog.at_level(logging.INFO, logger="acoustid_stack.worker.outage"):
        asyncio.run(scenario())

    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("JetStream unavailable (no leader)")
    assert messages[1].startswith("JetStream available again after")
    assert not outage.ongoing
    assert value(metrics.jetstream_outages) == 1
    assert value(metrics.jetstream_available) == 1


def test_the_delay_doubles_from_one_retry_to_the_next() -> None:
    outage = Outage(metrics=WorkerMetrics(CollectorRegistry()), initial_delay=0.01)

    async def waits(count: int) -> list[float]:
        loop = asyncio.get_running_loop()
        stop, spent = asyncio.Event(), []
        for _ in range(count):
            started = loop.time()
            await outage.wait(stop, "timeout")
            spent.append(loop.time() - started)
        return spent

    # a sleep is never shorter than asked: 0.01, 0.02, 0.04, 0.08
    assert all(s >= d for s, d in zip(asyncio.run(waits(4)), (0.01, 0.02, 0.04, 0.08), strict=True))


def test_a_stop_cuts_the_wait_short() -> None:
    outage = Outage(metrics=WorkerMetrics(CollectorRegistry()), initial_delay=60.0)

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.call_later(0.05, stop.set)
        started = loop.time()
        await outage.wait(stop, "no server")
        return loop.time() - started

    assert asyncio.run(scenario()) < 30  # far below the 60 s it would otherwise sleep
