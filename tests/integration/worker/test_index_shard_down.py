"""An index shard down while the worker imports (issue 14): a song whose fingerprint lives on
the missing shard must not get a second fingerprint and track. The batch waits, pending,
until every shard answers, then joins the existing track. Two real index servers, real
PostgreSQL and NATS, the consumer in this process."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from nats.aio.client import Client
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select

from acoustid_stack.config import Settings, load_settings
from acoustid_stack.db.schema import fingerprint as fp_db
from acoustid_stack.db.schema import ingest as ingest_db
from acoustid_stack.index.client import ShardedIndexClient
from acoustid_stack.submissions import stream
from acoustid_stack.submissions.databases import Databases
from acoustid_stack.submissions.outbox import republish_lost
from acoustid_stack.submissions.stream import publish_submissions, submission_subject
from acoustid_stack.worker.consumer import ConsumerOptions, SubmissionConsumer
from acoustid_stack.worker.importer import SubmissionImporter
from acoustid_stack.worker.metrics import SHARD_UNAVAILABLE, WorkerMetrics
from worker_support import IndexShard, eventually, handled

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

Submit = Callable[..., Awaitable[list[int]]]
#: deliveries a deferred batch goes through before the test brings the shard back
DEFERRALS = 3
#: fresh songs tried until one lands on the shard the test stops (half do, by the ring)
PLACEMENT_TRIES = 64


@pytest.fixture
def sharded_settings(worker_environ: dict[str, str], index_shards: list[IndexShard]) -> Settings:
    shards = ",".join(shard.url for shard in index_shards)
    return load_settings(path=None, environ={**worker_environ, "ACOUSTID_INDEX_SHARDS": shards})


@pytest.fixture
async def sharded_index(sharded_settings: Settings) -> AsyncIterator[ShardedIndexClient]:
    client = ShardedIndexClient.from_settings(sharded_settings)
    yield client
    await client.close()


@pytest.fixture
def sharded_importer(databases: Databases, sharded_index: ShardedIndexClient) -> SubmissionImporter:
    return SubmissionImporter(databases=databases, index=sharded_index, search_timeout=0.5)


@pytest.fixture
async def run_consumer(
    nc: Client, settings: Settings, sharded_importer: SubmissionImporter
) -> AsyncIterator[Callable[[ConsumerOptions], WorkerMetrics]]:
    """Start a consumer with these options, importing through both shards until the test
    ends; its metrics."""
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    def start(options: ConsumerOptions) -> WorkerMetrics:
        metrics = WorkerMetrics(CollectorRegistry())
        consumer = SubmissionConsumer(
            js=nc.jetstream(),
            settings=settings.nats,
            import_batch=sharded_importer.import_batch,
            metrics=metrics,
            options=options,
        )
        tasks.append(asyncio.create_task(consumer.run(stop)))
        return metrics

    yield start
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)


async def song_on(
    shard: IndexShard,
    *,
    index: ShardedIndexClient,
    importer: SubmissionImporter,
    databases: Databases,
    submit: Submit,
    make_hashes: Any,
) -> tuple[Any, Any, uuid.UUID]:
    """A song imported (fingerprint on a new track) whose fingerprint the ring places on
    `shard`: its hashes, its submission result and its MBID."""
    for _ in range(PLACEMENT_TRIES):
        hashes, mbid = make_hashes(), uuid.uuid4()
        [submission_id] = await submit(hashes, mbid=mbid)
        await importer.import_submission(submission_id)
        result = await result_of(databases, submission_id)
        if index.ring.owner(result.fingerprint_id) == shard.url:
            return hashes, result, mbid
    raise AssertionError(f"no fingerprint landed on {shard.url} in {PLACEMENT_TRIES} imports")


async def result_of(databases: Databases, submission_id: int) -> Any:
    r = ingest_db.submission_result
    async with databases.ingest.connect() as conn:
        return (await conn.execute(select(r).where(r.c.submission_id == submission_id))).one()


async def newest_rows(databases: Databases) -> tuple[int, int]:
    """(highest track id, highest fingerprint id): a row above them was created since."""
    t, f = fp_db.track, fp_db.fingerprint
    async with databases.fingerprint.connect() as conn:
        return (
            int(await conn.scalar(select(func.max(t.c.id))) or 0),
            int(await conn.scalar(select(func.max(f.c.id))) or 0),
        )


async def has_result(databases: Databases, submission_id: int) -> bool:
    r = ingest_db.submission_result
    async with databases.ingest.connect() as conn:
        count = await conn.scalar(select(func.count()).where(r.c.submission_id == submission_id))
    return bool(count)


def deferred(metrics: WorkerMetrics) -> float:
    return float(metrics.deferred.labels(SHARD_UNAVAILABLE)._value.get())


async def deferred_or_imported(
    metrics: WorkerMetrics, databases: Databases, submission_id: int, times: int
) -> bool:
    """Deferred `times` times, or imported after all (what a degraded search did)."""
    return deferred(metrics) >= times or await handled(databases, [submission_id]) == 1


async def assert_waiting(databases: Databases, submission_id: int, before: tuple[int, int]) -> None:
    """Nothing imported: no new track, no new fingerprint, the submission still pending."""
    assert await newest_rows(databases) == before, "a track or fingerprint was created"
    assert await handled(databases, [submission_id]) == 0
    assert not await has_result(databases, submission_id)


async def test_a_song_on_a_stopped_shard_waits_for_it_and_then_joins_its_track(
    *,
    index_shards: list[IndexShard],
    sharded_index: ShardedIndexClient,
    sharded_importer: SubmissionImporter,
    run_consumer: Callable[[ConsumerOptions], WorkerMetrics],
    nc: Client,
    settings: Settings,
    databases: Databases,
    submit: Submit,
    make_hashes: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = index_shards[1]
    hashes, first, mbid = await song_on(
        down,
        index=sharded_index,
        importer=sharded_importer,
        databases=databases,
        submit=submit,
        make_hashes=make_hashes,
    )
    before = await newest_rows(databases)
    metrics = run_consumer(ConsumerOptions(backoff=(1.0,), max_deliver=50, error_delays=(0.2,)))
    down.process.stop()

    [again] = await submit(hashes, mbid=mbid)
    await publish_submissions(nc.jetstream(), settings.nats, [again])
    await eventually(
        lambda: deferred_or_imported(metrics, databases, again, DEFERRALS),
        f"the batch is deferred {DEFERRALS} times",
    )

    await assert_waiting(databases, again, before)
    assert metrics.errors._value.get() == 0  # waiting for a shard is not an import error
    deferrals = [
        r.getMessage()
        for r in caplog.records
        if r.name == "acoustid_stack.worker.consumer" and r.levelno == logging.WARNING
    ]
    assert deferrals
    assert all(down.url in line for line in deferrals), deferrals

    down.start()  # the same data folder: the song's fingerprint is back
    await eventually(lambda: _equals(handled(databases, [again]), 1), "it is imported")
    result = await result_of(databases, again)
    assert (result.track_id, result.fingerprint_id) == (first.track_id, first.fingerprint_id)
    assert await newest_rows(databases) == before


async def test_a_shard_down_longer_than_the_deliveries_leaves_the_song_to_the_outbox(
    *,
    index_shards: list[IndexShard],
    sharded_index: ShardedIndexClient,
    sharded_importer: SubmissionImporter,
    run_consumer: Callable[[ConsumerOptions], WorkerMetrics],
    nc: Client,
    settings: Settings,
    databases: Databases,
    submit: Submit,
    make_hashes: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # JetStream drops a re-publish of an id it saw within the duplicate window; in service
    # the deliveries outlast it (1+5+15+6×60 s > 300 s), here they take a second
    monkeypatch.setattr(stream, "DUPLICATE_WINDOW_SECONDS", 1.0)
    down = index_shards[1]
    hashes, first, mbid = await song_on(
        down,
        index=sharded_index,
        importer=sharded_importer,
        databases=databases,
        submit=submit,
        make_hashes=make_hashes,
    )
    before = await newest_rows(databases)
    options = ConsumerOptions(backoff=(1.0,), max_deliver=2, error_delays=(0.2,))
    metrics = run_consumer(options)
    down.process.stop()

    [again] = await submit(hashes, mbid=mbid)
    js = nc.jetstream()
    await publish_submissions(js, settings.nats, [again])
    await eventually(
        lambda: deferred_or_imported(metrics, databases, again, options.max_deliver),
        "every delivery is deferred",
    )
    await eventually(lambda: _not_queued(nc, settings, again), "the message is terminated")

    await assert_waiting(databases, again, before)

    down.start()

    async def republished_and_imported() -> bool:
        # what cron's outbox does every minute: re-publish pending ids the stream lacks
        await republish_lost(
            ingest=databases.ingest, js=js, settings=settings.nats, older_than=timedelta(0)
        )
        return await handled(databases, [again]) == 1

    await eventually(republished_and_imported, "the outbox brings it back and it is imported")
    # (no newest_rows check here: the outbox also re-published other tests' pending ones)
    result = await result_of(databases, again)
    assert (result.track_id, result.fingerprint_id) == (first.track_id, first.fingerprint_id)


async def _equals(value: Awaitable[Any], expected: Any) -> bool:
    return await value == expected


async def _not_queued(nc: Client, settings: Settings, submission_id: int) -> bool:
    subject = submission_subject(settings.nats, submission_id)
    info = await nc.jetstream().stream_info(settings.nats.stream, subjects_filter=subject)
    return subject not in (info.state.subjects or {})
