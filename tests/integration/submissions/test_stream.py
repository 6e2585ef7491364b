"""The submissions stream on the real NATS JetStream server."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.aio.client import Client
from nats.js.api import RetentionPolicy, StorageType
from nats.js.errors import NotFoundError

from acoustid_stack.config import NatsSettings
from acoustid_stack.submissions.connection import Reconnect, connect_nats
from acoustid_stack.submissions.stream import ensure_stream, publish_submissions

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def nats_settings(test_settings: Any) -> NatsSettings:
    """The session's stream settings with a per-test stream name, so tests do not share one."""
    base: NatsSettings = test_settings.nats
    suffix = secrets.token_hex(3)
    return dataclasses.replace(
        base,
        stream=f"{base.stream}_{suffix.upper()}",
        subject_prefix=f"{base.subject_prefix}_{suffix}",  # must not overlap the session stream
    )


@pytest.fixture
async def nc(nats_settings: NatsSettings) -> AsyncIterator[Client]:
    client = await connect_nats(nats_settings, reconnect=Reconnect.FAIL_FAST)
    try:
        yield client
    finally:
        js = client.jetstream()
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(nats_settings.stream)
        await client.close()


async def test_ensure_stream_creates_a_file_backed_work_queue_with_a_duplicate_window(
    nc: Client, nats_settings: NatsSettings
) -> None:
    js = nc.jetstream()
    await ensure_stream(js, nats_settings)
    await ensure_stream(js, nats_settings)  # a second process starting changes nothing

    info = await js.stream_info(nats_settings.stream)
    assert info.config.subjects == [f"{nats_settings.subject_prefix}.>"]
    assert info.config.storage == StorageType.FILE
    assert info.config.retention == RetentionPolicy.WORK_QUEUE
    assert info.config.num_replicas == nats_settings.replicas
    assert info.config.duplicate_window is not None
    assert info.config.duplicate_window >= 120


async def test_publish_submissions_sends_one_message_per_id_on_its_own_subject(
    nc: Client, nats_settings: NatsSettings
) -> None:
    js = nc.jetstream()
    await ensure_stream(js, nats_settings)
    await publish_submissions(js, nats_settings, [11, 12, 13])

    sub = await js.pull_subscribe(f"{nats_settings.subject_prefix}.>", durable="t")
    messages = await sub.fetch(3, timeout=5)
    assert sorted(m.subject for m in messages) == [
        f"{nats_settings.subject_prefix}.{i}" for i in (11, 12, 13)
    ]
    assert sorted(m.data for m in messages) == [b"11", b"12", b"13"]
    assert all(m.headers and m.headers["Nats-Msg-Id"] == m.data.decode() for m in messages)


async def test_publishing_the_same_id_twice_stores_one_message(
    nc: Client, nats_settings: NatsSettings
) -> None:
    js = nc.jetstream()
    await ensure_stream(js, nats_settings)
    await publish_submissions(js, nats_settings, [7, 8])
    await publish_submissions(js, nats_settings, [7])

    info = await js.stream_info(nats_settings.stream)
    assert info.state.messages == 2


async def test_publishing_many_ids_at_once_stores_them_all(
    nc: Client, nats_settings: NatsSettings
) -> None:
    js = nc.jetstream()
    await ensure_stream(js, nats_settings)
    await publish_submissions(js, nats_settings, range(1, 501))

    info = await js.stream_info(nats_settings.stream)
    assert info.state.messages == 500


async def test_publishing_without_a_stream_fails_so_the_caller_leaves_rows_pending(
    nc: Client, nats_settings: NatsSettings
) -> None:
    js = nc.jetstream()
    with pytest.raises(Exception, match=r"(?i)no (responders|response|stream)"):
        await asyncio.wait_for(publish_submissions(js, nats_settings, [1]), timeout=10)
