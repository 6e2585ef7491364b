"""The outbox: re-publish pending submissions whose NATS message was lost (DESIGN.md §2).

A submission is pending until imported. If it is still pending a minute after it was
created and the stream holds no message for it, the message was lost (api crashed between
commit and publish, NATS lost it, or it ran out of deliveries): publish it again. Ids whose
message is still in the stream are left alone, so a slow backlog is never duplicated.
"""

from __future__ import annotations

from datetime import timedelta

from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from acoustid_stack.config import NatsSettings
from acoustid_stack.submissions.store import stale_pending_ids
from acoustid_stack.submissions.stream import (
    ensure_stream,
    publish_submissions,
    submission_subject,
)

STALE_AFTER = timedelta(minutes=1)
MAX_PER_RUN = 10_000


async def republish_lost(
    *,
    ingest: AsyncEngine,
    js: JetStreamContext,
    settings: NatsSettings,
    older_than: timedelta = STALE_AFTER,
    limit: int = MAX_PER_RUN,
) -> list[int]:
    """Publish again every stale pending submission with no message in the stream; their ids."""
    async with ingest.connect() as conn:
        pending = await stale_pending_ids(conn, older_than=older_than, limit=limit)
    if not pending:
        return []
    # created here, not once at start: the stream may not exist yet (JetStream had no leader
    # when cron started) or may be gone (NATS restarted with an empty store)
    await ensure_stream(js, settings)
    info = await js.stream_info(settings.stream, subjects_filter=f"{settings.subject_prefix}.>")
    queued = set((info.state.subjects or {}).keys())
    lost = [i for i in pending if submission_subject(settings, i) not in queued]
    await publish_submissions(js, settings, lost)
    return lost
