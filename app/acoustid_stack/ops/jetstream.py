"""JetStream recovery: recreate the stream and re-publish every pending submission.

Why no stream snapshot: the SUBMISSIONS stream is a work queue whose messages only say
"import submission N", and the ingest database already knows every pending N (DESIGN.md
§2: the row is the truth, NATS is the doorbell). A snapshot would be older than the
database and re-deliver imports already done; re-publishing from `pending_submission` is
always exact, needs no backup storage and also covers messages lost after the snapshot.
On a 3-node cluster the stream is R3, so one lost node loses nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import StreamInfo
from nats.js.errors import BadRequestError, ServiceUnavailableError

from acoustid_stack.config import Settings
from acoustid_stack.submissions.connection import Reconnect, connect_nats
from acoustid_stack.submissions.stream import MSG_ID_HEADER, ensure_stream, submission_subject

PUBLISH_BATCH = 1000
STREAM_ATTEMPTS = 10
STREAM_RETRY_SECONDS = 2.0
#: JetStream's "no suitable peers for placement": fewer servers have joined the cluster than
#: the stream's replicas need, as right after new nodes start
NO_SUITABLE_PEERS = 10005


@dataclass(frozen=True)
class Republished:
    pending: int
    republished: int
    replicas: int
    current_replicas: int


def republish_pending(settings: Settings) -> Republished:
    """Ensure the stream exists, then publish every pending submission that has no message
    in it (of any age: the cron outbox waits a minute, a restore should not)."""
    return asyncio.run(_republish_pending(settings))


async def _stream_with_subjects(js: JetStreamContext, settings: Settings) -> StreamInfo:
    """Ensure the stream and read which subjects it holds; retried while a node that just
    joined makes the cluster elect stream leaders (requests time out meanwhile) or while too
    few nodes have joined to place the stream's replicas."""
    for attempt in range(STREAM_ATTEMPTS):
        try:
            await ensure_stream(js, settings.nats)
            return await js.stream_info(
                settings.nats.stream, subjects_filter=f"{settings.nats.subject_prefix}.>"
            )
        except (NatsTimeoutError, ServiceUnavailableError, BadRequestError) as exc:
            placing = not isinstance(exc, BadRequestError) or exc.err_code == NO_SUITABLE_PEERS
            if not placing or attempt == STREAM_ATTEMPTS - 1:
                raise
            await asyncio.sleep(STREAM_RETRY_SECONDS)
    raise AssertionError("unreachable")


async def _republish_pending(settings: Settings) -> Republished:
    with psycopg.connect(settings.database.get("ingest").conninfo()) as conn:
        pending = [int(r[0]) for r in conn.execute("SELECT id FROM pending_submission ORDER BY id")]
    nc = await connect_nats(settings.nats, reconnect=Reconnect.FAIL_FAST)
    try:
        js = nc.jetstream()
        info = await _stream_with_subjects(js, settings)
        queued = set((info.state.subjects or {}).keys())
        lost = [i for i in pending if submission_subject(settings.nats, i) not in queued]
        # a fresh message id: the old one may still sit in the duplicate window of a stream
        # whose message was acked by an import that the restore rolled back
        epoch = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        for start in range(0, len(lost), PUBLISH_BATCH):
            await asyncio.gather(
                *(
                    js.publish(
                        submission_subject(settings.nats, i),
                        str(i).encode(),
                        stream=settings.nats.stream,
                        headers={MSG_ID_HEADER: f"{i}.restore.{epoch}"},
                    )
                    for i in lost[start : start + PUBLISH_BATCH]
                )
            )
        info = await js.stream_info(settings.nats.stream)
        cluster = info.cluster
        current = 1 + sum(1 for r in (cluster.replicas or []) if r.current) if cluster else 1
        return Republished(len(pending), len(lost), info.config.num_replicas or 1, current)
    finally:
        await nc.close()
