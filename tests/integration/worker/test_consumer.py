"""The JetStream consumer and the worker process, on real NATS, databases and index."""

from __future__ import annotations

import asyncio
import secrets
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from nats.aio.client import Client
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select

from acoustid_stack.config import Settings
from acoustid_stack.db.schema import fingerprint as fp_db
from acoustid_stack.db.schema import ingest as ingest_db
from acoustid_stack.local.process import ManagedProcess
from acoustid_stack.submissions.databases import Databases
from acoustid_stack.submissions.stream import publish_submissions, submission_subject
from acoustid_stack.worker.consumer import ConsumerOptions, SubmissionConsumer
from acoustid_stack.worker.importer import SubmissionImporter
from acoustid_stack.worker.metrics import WorkerMetrics
from worker_support import eventually, handled

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

Submit = Callable[..., Awaitable[list[int]]]


@pytest.fixture
async def consumer(
    nc: Client, settings: Settings, importer: SubmissionImporter
) -> AsyncIterator[tuple[SubmissionConsumer, WorkerMetrics]]:
    """A consumer importing in this process until the test ends."""
    metrics = WorkerMetrics(CollectorRegistry())
    running = SubmissionConsumer(
        js=nc.jetstream(),
        settings=settings.nats,
        import_batch=importer.import_batch,
        metrics=metrics,
        options=ConsumerOptions.with_ack_wait(1.0),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(running.run(stop))
    yield running, metrics
    stop.set()
    await asyncio.wait_for(task, timeout=10)


def outcomes(metrics: WorkerMetrics, outcome: str) -> float:
    return float(metrics.imports.labels(outcome)._value.get())


async def test_published_submissions_are_imported_and_acked(
    *,
    consumer: Any,
    nc: Client,
    settings: Settings,
    databases: Databases,
    submit: Submit,
    make_hashes: Any,
) -> None:
    ids = await submit(*(make_hashes() for _ in range(5)))

    await publish_submissions(nc.jetstream(), settings.nats, ids)

    await eventually(lambda: _equals(handled(databases, ids), len(ids)), "all are imported")
    _, metrics = consumer
    await eventually(lambda: _stream_empty(nc, settings), "every message is acked")
    assert outcomes(metrics, "imported") == len(ids)


async def test_a_message_delivered_twice_changes_nothing_the_second_time(
    *,
    consumer: Any,
    nc: Client,
    settings: Settings,
    databases: Databases,
    submit: Submit,
    make_hashes: Any,
) -> None:
    [submission_id] = await submit(make_hashes())
    js = nc.jetstream()
    await publish_submissions(js, settings.nats, [submission_id])
    await eventually(lambda: _equals(handled(databases, [submission_id]), 1), "it is imported")
    before = await _fingerprint_rows(databases)

    # a second message for the same id, as after the duplicate window or a stale redelivery
    await js.publish(
        submission_subject(settings.nats, submission_id),
        str(submission_id).encode(),
        headers={"Nats-Msg-Id": f"{submission_id}-again"},
    )

    _, metrics = consumer
    await eventually(
        lambda: _equals(_value(outcomes(metrics, "already_handled")), 1), "the repeat is acked"
    )
    assert await _fingerprint_rows(databases) == before
    r = ingest_db.submission_result
    async with databases.ingest.connect() as conn:
        results = await conn.scalar(select(func.count()).where(r.c.submission_id == submission_id))
    assert results == 1


async def test_a_submission_whose_row_cannot_be_written_does_not_hold_back_its_batch(
    *,
    consumer: Any,
    nc: Client,
    settings: Settings,
    databases: Databases,
    submit: Submit,
    make_hashes: Any,
    client_ids: tuple[int, int],
) -> None:
    ids = await submit(*(make_hashes() for _ in range(7)))
    poisoned = ids[3]
    # a result row already there makes the import's insert of it violate the primary key
    account_id, application_id = client_ids
    async with databases.ingest.begin() as conn:
        await conn.execute(
            ingest_db.submission_result.insert().values(
                submission_id=poisoned,
                account_id=account_id,
                application_id=application_id,
                fingerprint_id=1,
                track_id=1,
                track_gid=uuid.uuid4(),
            )
        )

    try:
        await publish_submissions(nc.jetstream(), settings.nats, ids)

        others = [i for i in ids if i != poisoned]
        await eventually(
            lambda: _equals(handled(databases, others), len(others)), "others imported"
        )
        _, metrics = consumer
        await eventually(lambda: _at_least(_value(metrics.errors._value.get()), 1), "error counted")
        assert await handled(databases, [poisoned]) == 0
        assert outcomes(metrics, "imported") == len(others)
    finally:
        # later tests re-publish every pending submission of the session's database
        s = ingest_db.submission
        async with databases.ingest.begin() as conn:
            await conn.execute(s.update().where(s.c.id == poisoned).values(handled=True))


async def test_a_submission_with_a_value_too_large_for_its_index_does_not_hold_back_its_batch(
    *,
    consumer: Any,
    nc: Client,
    settings: Settings,
    databases: Databases,
    submit: Submit,
    make_hashes: Any,
) -> None:
    others = await submit(*(make_hashes() for _ in range(6)))
    # stored by an api without `text_limits`: 6 KB that PostgreSQL cannot compress, over the
    # 2704 bytes an entry of the unique index on foreignid (vendor_id, name) may have
    [poisoned] = await submit(make_hashes(), foreignid="vendor:" + secrets.token_urlsafe(4500))

    try:
        await publish_submissions(nc.jetstream(), settings.nats, [*others, poisoned])

        await eventually(
            lambda: _equals(handled(databases, others), len(others)), "others imported"
        )
        _, metrics = consumer
        await eventually(lambda: _at_least(_value(metrics.errors._value.get()), 1), "error counted")
        assert await handled(databases, [poisoned]) == 0
    finally:
        s = ingest_db.submission
        async with databases.ingest.begin() as conn:
            await conn.execute(s.update().where(s.c.id == poisoned).values(handled=True))


async def test_a_message_that_is_not_a_submission_id_is_terminated(
    consumer: Any, nc: Client, settings: Settings
) -> None:
    await nc.jetstream().publish(f"{settings.nats.subject_prefix}.junk", b"not a number")

    await eventually(lambda: _stream_empty(nc, settings), "the message is gone")


async def test_a_worker_killed_mid_import_leaves_nothing_half_done_and_a_new_one_finishes(
    *,
    start_worker: Callable[..., ManagedProcess],
    nc: Client,
    settings: Settings,
    databases: Databases,
    submit: Submit,
    make_hashes: Any,
) -> None:
    ids = await submit(*(make_hashes() for _ in range(300)))
    await publish_submissions(nc.jetstream(), settings.nats, ids)
    first = start_worker("--ack-wait", "1", "--batch", "8")
    await eventually(lambda: _at_least(handled(databases, ids), 20), "imports are under way")

    first.kill()  # SIGKILL: open transactions roll back, fetched messages stay unacked
    done_by_first = await handled(databases, ids)
    assert done_by_first < len(ids)
    start_worker("--ack-wait", "1")

    await eventually(lambda: _equals(handled(databases, ids), len(ids)), "all are imported")
    r = ingest_db.submission_result
    async with databases.ingest.connect() as conn:
        rows = (
            await conn.execute(
                select(r.c.submission_id, r.c.fingerprint_id).where(r.c.submission_id.in_(ids))
            )
        ).all()
    assert sorted(row.submission_id for row in rows) == sorted(ids)  # one result each
    fingerprint_ids = [row.fingerprint_id for row in rows]
    f = fp_db.fingerprint
    async with databases.fingerprint.connect() as conn:
        counts = (
            (await conn.execute(select(f.c.submission_count).where(f.c.id.in_(fingerprint_ids))))
            .scalars()
            .all()
        )
    assert len(set(fingerprint_ids)) == len(ids)
    assert np.all(np.asarray(counts) == 1)


async def test_a_worker_stops_cleanly_on_sigterm(
    start_worker: Callable[..., ManagedProcess], nc: Client
) -> None:
    worker = start_worker("--ack-wait", "1")
    await eventually(lambda: _logged(worker, "worker consuming"), "the worker runs")

    worker.stop_signal = signal.SIGTERM
    assert worker.stop() == 0
    assert "worker stopped" in worker.log_path.read_text()


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def _at_least(value: Any, minimum: int) -> bool:
    return bool(await value >= minimum)


async def _value(value: float) -> float:
    return value


async def _logged(process: ManagedProcess, text: str) -> bool:
    return text in process.log_path.read_text(errors="replace")


async def _stream_empty(nc: Client, settings: Settings) -> bool:
    info = await nc.jetstream().stream_info(settings.nats.stream)
    return info.state.messages == 0


async def _fingerprint_rows(databases: Databases) -> tuple[int, int]:
    f = fp_db.fingerprint
    async with databases.fingerprint.connect() as conn:
        row = (await conn.execute(select(func.count(), func.sum(f.c.submission_count)))).one()
    return int(row[0]), int(row[1] or 0)
