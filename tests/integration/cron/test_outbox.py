"""The outbox job on the real ingest database and JetStream."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta

import numpy as np
import pytest
from nats.aio.client import Client
from sqlalchemy import text

from acoustid_stack.config import NatsSettings, Settings
from acoustid_stack.submissions.connection import Reconnect, connect_nats
from acoustid_stack.submissions.databases import Databases, open_databases
from acoustid_stack.submissions.outbox import republish_lost
from acoustid_stack.submissions.store import NewSubmission, insert_submissions
from acoustid_stack.submissions.stream import ensure_stream, publish_submissions

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
async def databases(migrated_settings: Settings) -> AsyncIterator[Databases]:
    dbs = open_databases(migrated_settings.database, pool_size=2)
    yield dbs
    await dbs.dispose()


@pytest.fixture
async def stream(migrated_settings: Settings) -> AsyncIterator[tuple[Client, NatsSettings]]:
    """A stream of its own, so messages of other tests do not count here."""
    suffix = secrets.token_hex(3)
    nats_settings = dataclasses.replace(
        migrated_settings.nats,
        stream=f"{migrated_settings.nats.stream}_{suffix.upper()}",
        subject_prefix=f"{migrated_settings.nats.subject_prefix}_{suffix}",
    )
    nc = await connect_nats(nats_settings, reconnect=Reconnect.FAIL_FAST)
    await ensure_stream(nc.jetstream(), nats_settings)
    yield nc, nats_settings
    await nc.jetstream().delete_stream(nats_settings.stream)
    await nc.close()


async def submit(databases: Databases, count: int, *, age: timedelta) -> list[int]:
    rng = np.random.default_rng()
    items = [
        NewSubmission(
            account_id=1,
            application_id=1,
            fingerprint=rng.integers(-(2**31), 2**31, 200).tolist(),
            length=120,
        )
        for _ in range(count)
    ]
    async with databases.ingest.begin() as conn:
        ids = await insert_submissions(conn, items)
        await conn.execute(
            text("UPDATE submission SET created = now() - :age WHERE id = ANY(:ids)"),
            {"age": age, "ids": ids},
        )
    return ids


async def queued_ids(nc: Client, settings: NatsSettings) -> list[int]:
    info = await nc.jetstream().stream_info(
        settings.stream, subjects_filter=f"{settings.subject_prefix}.>"
    )
    return sorted(int(subject.rsplit(".", 1)[1]) for subject in info.state.subjects or {})


async def test_a_pending_submission_whose_message_was_lost_is_published_again(
    databases: Databases, stream: tuple[Client, NatsSettings]
) -> None:
    nc, settings = stream
    lost = await submit(databases, 2, age=timedelta(minutes=2))

    republished = await republish_lost(
        ingest=databases.ingest, js=nc.jetstream(), settings=settings
    )

    assert set(lost) <= set(republished)
    assert set(lost) <= set(await queued_ids(nc, settings))


async def test_a_recent_submission_is_left_to_its_own_message(
    databases: Databases, stream: tuple[Client, NatsSettings]
) -> None:
    nc, settings = stream
    fresh = await submit(databases, 1, age=timedelta(0))

    republished = await republish_lost(
        ingest=databases.ingest, js=nc.jetstream(), settings=settings
    )

    assert fresh[0] not in republished


async def test_a_stale_submission_whose_message_is_still_queued_is_not_published_twice(
    databases: Databases, stream: tuple[Client, NatsSettings]
) -> None:
    nc, settings = stream
    slow = await submit(databases, 1, age=timedelta(minutes=10))
    await publish_submissions(nc.jetstream(), settings, slow)

    republished = await republish_lost(
        ingest=databases.ingest, js=nc.jetstream(), settings=settings
    )

    assert slow[0] not in republished
    info = await nc.jetstream().stream_info(settings.stream)
    assert info.state.messages == len(await queued_ids(nc, settings))


async def test_a_stream_that_is_gone_is_created_again_and_receives_the_lost_submissions(
    databases: Databases, stream: tuple[Client, NatsSettings]
) -> None:
    """NATS restarted with an empty store, or cron started before JetStream had a leader."""
    nc, settings = stream
    await nc.jetstream().delete_stream(settings.stream)
    lost = await submit(databases, 2, age=timedelta(minutes=2))

    republished = await republish_lost(
        ingest=databases.ingest, js=nc.jetstream(), settings=settings
    )

    assert set(lost) <= set(republished)
    assert set(lost) <= set(await queued_ids(nc, settings))
