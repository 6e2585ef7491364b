"""Submission rows in the ingest database: writing new ones and finding those still pending.

The row is the truth (DESIGN.md §2): it is committed before the client hears "ok", and a
submission stays in `pending_submission` until a worker imported or rejected it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from acoustid_stack.db.int4_arrays import Int4ArrayParameter
from acoustid_stack.db.schema.ingest import pending_submission, submission
from acoustid_stack.fingerprint.hashes import Int32Array


@dataclass(frozen=True)
class NewSubmission:
    """One submitted fingerprint with what the client said about it (validated by the api)."""

    account_id: int
    application_id: int
    fingerprint: Sequence[int] | Int32Array  # signed int32 hashes, as `int4[]` stores them
    length: int
    application_version: str | None = None
    bitrate: int | None = None
    format: str | None = None
    mbid: uuid.UUID | None = None
    puid: uuid.UUID | None = None
    foreignid: str | None = None
    meta: Mapping[str, Any] | None = field(default=None)


async def insert_submissions(conn: AsyncConnection, items: Sequence[NewSubmission]) -> list[int]:
    """Insert submissions and queue them as pending, in the caller's transaction; their ids.

    The caller commits, then publishes the ids (`stream.publish_submissions`).
    """
    if not items:
        return []
    rows = [
        {
            "account_id": item.account_id,
            "application_id": item.application_id,
            "application_version": item.application_version,
            "fingerprint": item.fingerprint,
            "length": item.length,
            "bitrate": item.bitrate,
            "format": item.format,
            "mbid": item.mbid,
            "puid": item.puid,
            "foreignid": item.foreignid,
            "meta": dict(item.meta) if item.meta else None,
        }
        for item in items
    ]
    # the hashes go packed (Int4ArrayParameter): as a list they cost the event loop ~6 µs each
    statement = insert(submission).values(
        fingerprint=bindparam("fingerprint", type_=Int4ArrayParameter())
    )
    result = await conn.execute(
        statement.returning(submission.c.id, sort_by_parameter_order=True), rows
    )
    ids = [row.id for row in result]
    await conn.execute(insert(pending_submission), [{"id": i} for i in ids])
    return ids


async def stale_pending_ids(
    conn: AsyncConnection, *, older_than: timedelta, limit: int
) -> list[int]:
    """Ids of pending submissions created more than `older_than` ago, oldest first."""
    query = (
        select(pending_submission.c.id)
        .join(submission, submission.c.id == pending_submission.c.id)
        .where(submission.c.created < func.now() - older_than)
        .order_by(pending_submission.c.id)
        .limit(limit)
    )
    return list((await conn.scalars(query)).all())


async def pending_backlog(conn: AsyncConnection) -> tuple[int, float]:
    """(pending submissions, age in seconds of the oldest, 0 when none)."""
    oldest = func.extract("epoch", func.now() - func.min(submission.c.created))
    query = select(func.count(), func.coalesce(oldest, 0)).select_from(
        pending_submission.join(submission, submission.c.id == pending_submission.c.id)
    )
    count, age = (await conn.execute(query)).one()
    return int(count), float(age)
