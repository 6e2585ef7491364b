"""A worker dying between the fingerprint and the ingest commit of a batch."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from acoustid_stack.db.schema import fingerprint as fp_db
from acoustid_stack.db.schema import ingest as ingest_db
from acoustid_stack.index.client import ShardedIndexClient
from acoustid_stack.submissions.databases import Databases
from acoustid_stack.worker.importer import SubmissionImporter
from acoustid_stack.worker.interfaces import ImportOutcome

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

Submit = Callable[..., Awaitable[list[int]]]


class Crash(Exception):
    """The worker dies after the fingerprint commit, before the ingest commit."""


async def crash() -> None:
    raise Crash


async def ingest_rows(databases: Databases, submission_id: int) -> dict[str, Any]:
    """How many result and provenance rows a submission has, and whether it is handled."""
    s, p = ingest_db.submission, ingest_db.pending_submission
    tables = (
        ingest_db.submission_result,
        ingest_db.fingerprint_source,
        ingest_db.track_mbid_source,
        ingest_db.track_puid_source,
        ingest_db.track_meta_source,
        ingest_db.track_foreignid_source,
    )
    async with databases.ingest.connect() as conn:
        rows: dict[str, Any] = {
            table.name: await conn.scalar(
                select(func.count()).where(table.c.submission_id == submission_id)
            )
            for table in tables
        }
        rows["handled"] = await conn.scalar(select(s.c.handled).where(s.c.id == submission_id))
        rows["pending"] = await conn.scalar(select(func.count()).where(p.c.id == submission_id))
    return rows


async def test_a_batch_retried_after_a_crash_between_the_commits_is_counted_exactly_once(
    databases: Databases,
    index: ShardedIndexClient,
    submit: Submit,
    make_hashes: Any,
) -> None:
    hashes = make_hashes()
    fields = {
        "mbid": uuid.uuid4(),
        "puid": uuid.uuid4(),
        "meta": {"track": "Song", "artist": "Band"},
        "foreignid": "vendor:crash",
    }
    # the second reuses the first's new fingerprint within the batch
    crashed = await submit(hashes, make_hashes(like=hashes, noise=0.25), **fields)
    dying = SubmissionImporter(databases=databases, index=index, before_ingest_commit=crash)

    with pytest.raises(Crash):
        await dying.import_batch(crashed)

    assert (await ingest_rows(databases, crashed[0]))["pending"] == 1
    [fresh] = await submit(make_hashes())
    retry = SubmissionImporter(databases=databases, index=index)
    outcomes = await retry.import_batch([*crashed, fresh])

    assert outcomes == dict.fromkeys([*crashed, fresh], ImportOutcome.IMPORTED)
    exactly_once = {
        "submission_result": 1,
        "fingerprint_source": 1,
        "track_mbid_source": 1,
        "track_puid_source": 1,
        "track_meta_source": 1,
        "track_foreignid_source": 1,
        "handled": True,
        "pending": 0,
    }
    for submission_id in crashed:
        assert await ingest_rows(databases, submission_id) == exactly_once
    r, f = ingest_db.submission_result, fp_db.fingerprint
    async with databases.ingest.connect() as conn:
        results = (await conn.execute(select(r).where(r.c.submission_id.in_(crashed)))).all()
        fresh_fingerprint = await conn.scalar(
            select(r.c.fingerprint_id).where(r.c.submission_id == fresh)
        )
    [fingerprint_id] = {row.fingerprint_id for row in results}
    [track_id] = {row.track_id for row in results}
    async with databases.fingerprint.connect() as conn:
        ids = [fingerprint_id, fresh_fingerprint]
        found = await conn.execute(select(f.c.id, f.c.submission_count).where(f.c.id.in_(ids)))
        count_of = {row.id: row.submission_count for row in found}
        link_counts = [
            await conn.scalar(select(table.c.submission_count).where(table.c.track_id == track_id))
            for table in (
                fp_db.track_mbid,
                fp_db.track_puid,
                fp_db.track_meta,
                fp_db.track_foreignid,
            )
        ]
    assert count_of[fingerprint_id] == 2
    assert count_of[fresh_fingerprint] == 1
    assert link_counts == [2, 2, 2, 2]
