"""The JetStream stream that carries submission ids from the api to the workers.

Retention is *work-queue*: a message is removed once a worker acks it, so the stream holds
exactly the imports still to do and its disk use stays bounded by the backlog, not by
history (the ingest database keeps the history). Work-queue allows one consumer per
subject, which fits: every worker pulls from the same durable consumer. The duplicate
window (5 min) is longer than the outbox's one-minute re-publish age, so a re-publish of a
message that is still in the stream is dropped by JetStream instead of queued twice; a
later duplicate is harmless because import is idempotent by submission id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from acoustid_stack.config import NatsSettings

DUPLICATE_WINDOW_SECONDS = 300.0
# A submission nobody imported within a week is re-published by the outbox anyway.
MAX_AGE_SECONDS = 7 * 24 * 3600.0
MSG_ID_HEADER = "Nats-Msg-Id"


def submission_subject(settings: NatsSettings, submission_id: int) -> str:
    return f"{settings.subject_prefix}.{submission_id}"


def stream_config(settings: NatsSettings) -> StreamConfig:
    return StreamConfig(
        name=settings.stream,
        subjects=[f"{settings.subject_prefix}.>"],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        num_replicas=settings.replicas,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        max_age=MAX_AGE_SECONDS,
    )


async def ensure_stream(js: JetStreamContext, settings: NatsSettings) -> None:
    """Create the submissions stream, or bring an existing one to our configuration.

    Idempotent; safe to call from every api and worker process at start.
    """
    config = stream_config(settings)
    try:
        await js.stream_info(settings.stream)
    except NotFoundError:
        await js.add_stream(config)
        return
    await js.update_stream(config)


async def publish_submissions(
    js: JetStreamContext, settings: NatsSettings, ids: Sequence[int]
) -> None:
    """Publish one message per submission id and wait until JetStream stored all of them.

    The message id is the submission id, so JetStream drops a second publish of the same
    id within the duplicate window. Publishes run concurrently (one round trip for a
    batch); raises if the server did not store one of them — the submissions stay pending
    in the ingest database and the outbox re-publishes them.
    """
    await asyncio.gather(
        *(
            js.publish(
                submission_subject(settings, submission_id),
                str(submission_id).encode(),
                stream=settings.stream,
                headers={MSG_ID_HEADER: str(submission_id)},
            )
            for submission_id in ids
        )
    )
