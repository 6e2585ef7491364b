"""The worker's `/_health` (on its metrics port) proves the consumer makes progress: healthy
while idle on an empty stream, 503 while an import never returns, healthy again after."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

import httpx
import pytest
from nats.aio.client import Client
from prometheus_client import CollectorRegistry

from acoustid_stack.config import Settings
from acoustid_stack.local.process import ManagedProcess, free_port
from acoustid_stack.progress import HEALTH_PATH, Heartbeat, start_health_server
from acoustid_stack.submissions.stream import publish_submissions
from acoustid_stack.worker.consumer import ConsumerOptions, SubmissionConsumer
from acoustid_stack.worker.interfaces import ImportOutcome
from acoustid_stack.worker.metrics import WorkerMetrics
from worker_support import eventually

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

#: above the consumer's 1 s fetch timeout, so an idle consumer never looks stalled
MAX_AGE = 2.5


async def health(url: str) -> int:
    async with httpx.AsyncClient() as client:
        return (await client.get(url + HEALTH_PATH, timeout=5)).status_code


@pytest.fixture
async def stuck_import() -> AsyncIterator[tuple[asyncio.Event, list[int]]]:
    """(release, ids seen): an import that blocks until `release` is set."""
    release = asyncio.Event()
    seen: list[int] = []
    yield release, seen
    release.set()


@pytest.fixture
async def consumer_url(
    nc: Client, settings: Settings, stuck_import: tuple[asyncio.Event, list[int]]
) -> AsyncIterator[str]:
    """A real consumer on this test's stream, its heartbeat served as the worker serves it."""
    release, seen = stuck_import

    async def import_batch(ids: Sequence[int]) -> Mapping[int, ImportOutcome]:
        seen.extend(ids)
        await release.wait()
        return dict.fromkeys(ids, ImportOutcome.REJECTED)

    heartbeat = Heartbeat(MAX_AGE)
    server = start_health_server("127.0.0.1", 0, heartbeat)
    consumer = SubmissionConsumer(
        js=nc.jetstream(),
        settings=settings.nats,
        import_batch=import_batch,
        metrics=WorkerMetrics(CollectorRegistry()),
        options=ConsumerOptions.with_ack_wait(30.0),
        heartbeat=heartbeat,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    yield f"http://127.0.0.1:{server.server_address[1]}"
    stop.set()
    release.set()
    await asyncio.wait_for(task, timeout=10)
    server.shutdown()


async def test_an_idle_consumer_stays_healthy_and_a_stuck_import_turns_it_503(
    consumer_url: str,
    nc: Client,
    settings: Settings,
    stuck_import: tuple[asyncio.Event, list[int]],
) -> None:
    release, seen = stuck_import
    # idle for twice the limit: each empty fetch is a round of the loop
    for _ in range(5):
        await asyncio.sleep(MAX_AGE * 2 / 5)
        assert await health(consumer_url) == 200

    await publish_submissions(nc.jetstream(), settings.nats, [987654321])
    await eventually(lambda: _value(bool(seen)), "the consumer fetched the message")
    await eventually(lambda: _equals(health(consumer_url), 503), "the stuck consumer is 503")

    release.set()
    await eventually(lambda: _equals(health(consumer_url), 200), "it is healthy again")


async def test_the_worker_process_serves_health_and_metrics_on_its_metrics_port(
    start_worker: Callable[..., ManagedProcess],
) -> None:
    port = free_port()
    start_worker("--metrics-port", str(port), "--health-max-age", "5")
    url = f"http://127.0.0.1:{port}"
    await eventually(lambda: _answers(url + HEALTH_PATH), "the worker serves /_health")
    async with httpx.AsyncClient() as client:
        answer = await client.get(url + HEALTH_PATH)
        metrics = await client.get(url + "/metrics")
    assert answer.status_code == 200
    assert answer.text.startswith("ok: last progress")
    assert "worker_imports_total" in metrics.text


async def _answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(url, timeout=2)).status_code == 200
    except httpx.TransportError:
        return False


async def _equals(value: object, expected: object) -> bool:
    return bool(await value == expected)  # type: ignore[misc]


async def _value(value: bool) -> bool:
    return value


async def test_a_worker_waiting_for_nats_at_start_is_waiting_out_an_outage_not_stalled(
    start_worker: Callable[..., ManagedProcess],
) -> None:
    metrics_port, closed_port = free_port(), free_port()  # nothing listens on closed_port
    start_worker(
        "--metrics-port",
        str(metrics_port),
        "--health-max-age",
        "2",
        ACOUSTID_NATS_SERVERS=f"nats://127.0.0.1:{closed_port}",
    )
    url = f"http://127.0.0.1:{metrics_port}"
    await eventually(lambda: _answers(url + HEALTH_PATH), "the worker serves /_health")
    for _ in range(4):  # twice the limit
        await asyncio.sleep(1.0)
        assert await health(url) == 200
