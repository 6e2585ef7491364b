"""Importing whole batches: the same result as one by one, on the real databases and index."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from acoustid_stack.db.schema import fingerprint as fp_db
from acoustid_stack.db.schema import ingest as ingest_db
from acoustid_stack.submissions.databases import Databases
from acoustid_stack.worker.importer import SubmissionImporter
from acoustid_stack.worker.interfaces import ImportOutcome

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

Submit = Callable[..., Awaitable[list[int]]]


async def results(databases: Databases, ids: list[int]) -> dict[int, Any]:
    r = ingest_db.submission_result
    async with databases.ingest.connect() as conn:
        rows = (await conn.execute(select(r).where(r.c.submission_id.in_(ids)))).all()
    return {row.submission_id: row for row in rows}


async def fingerprints_of(databases: Databases, track_id: int) -> dict[int, int]:
    """fingerprint id -> submission_count of a track."""
    f = fp_db.fingerprint
    async with databases.fingerprint.connect() as conn:
        rows = await conn.execute(
            select(f.c.id, f.c.submission_count).where(f.c.track_id == track_id)
        )
        return {row.id: row.submission_count for row in rows}


async def mbid_count(databases: Databases, track_id: int, mbid: uuid.UUID) -> int:
    tm = fp_db.track_mbid
    async with databases.fingerprint.connect() as conn:
        count = await conn.scalar(
            select(tm.c.submission_count).where(tm.c.track_id == track_id, tm.c.mbid == mbid)
        )
    return int(count or 0)


async def test_the_same_song_twice_in_one_batch_shares_one_fingerprint_and_its_links(
    importer: SubmissionImporter, databases: Databases, submit: Submit, make_hashes: Any
) -> None:
    original = make_hashes()
    mbid = uuid.uuid4()
    ids = await submit(original, make_hashes(like=original, noise=0.25), mbid=mbid)

    outcomes = await importer.import_batch(ids)

    assert outcomes == dict.fromkeys(ids, ImportOutcome.IMPORTED)
    first, second = (await results(databases, ids))[ids[0]], (await results(databases, ids))[ids[1]]
    assert second.fingerprint_id == first.fingerprint_id
    assert await fingerprints_of(databases, first.track_id) == {first.fingerprint_id: 2}
    assert await mbid_count(databases, first.track_id, mbid) == 2


async def test_a_similar_song_twice_in_one_batch_joins_one_track_as_two_fingerprints(
    importer: SubmissionImporter, databases: Databases, submit: Submit, make_hashes: Any
) -> None:
    original = make_hashes()
    ids = await submit(original, make_hashes(like=original, noise=0.8))

    await importer.import_batch(ids)

    found = await results(databases, ids)
    assert found[ids[0]].track_id == found[ids[1]].track_id
    assert found[ids[0]].fingerprint_id != found[ids[1]].fingerprint_id
    assert await fingerprints_of(databases, found[ids[0]].track_id) == {
        found[ids[0]].fingerprint_id: 1,
        found[ids[1]].fingerprint_id: 1,
    }


async def test_a_batch_places_songs_like_one_by_one_imports_would(
    importer: SubmissionImporter, databases: Databases, submit: Submit, make_hashes: Any
) -> None:
    """A song already stored, a copy of it, a song new to the batch and its copy, and a
    similar song of another length (its own track) — all in one batch."""
    stored, fresh = make_hashes(), make_hashes()
    [stored_id] = await submit(stored)
    await importer.import_submission(stored_id)
    [long_copy] = await submit(make_hashes(like=fresh, noise=0.25), length=140)
    ids = [
        *await submit(
            make_hashes(like=stored, noise=0.25), fresh, make_hashes(like=fresh, noise=0.25)
        ),
        long_copy,
    ]

    await importer.import_batch(ids)

    found = await results(databases, [stored_id, *ids])
    stored_copy, new, new_copy, other_length = (found[i] for i in ids)
    assert stored_copy.fingerprint_id == found[stored_id].fingerprint_id
    assert new_copy.fingerprint_id == new.fingerprint_id
    assert len({found[stored_id].track_id, new.track_id, other_length.track_id}) == 3
    assert await fingerprints_of(databases, found[stored_id].track_id) == {
        found[stored_id].fingerprint_id: 2
    }


async def test_one_batch_reports_each_submission_s_own_outcome(
    importer: SubmissionImporter, databases: Databases, submit: Submit, make_hashes: Any
) -> None:
    [handled] = await submit(make_hashes())
    await importer.import_submission(handled)
    [good] = await submit(make_hashes())
    [too_short] = await submit(np.tile(make_hashes(79), 8))
    missing = 2**40

    outcomes = await importer.import_batch([handled, good, too_short, missing, good])

    assert outcomes == {
        handled: ImportOutcome.ALREADY_HANDLED,
        good: ImportOutcome.IMPORTED,
        too_short: ImportOutcome.REJECTED,
        missing: ImportOutcome.MISSING,
    }
    p = ingest_db.pending_submission
    async with databases.ingest.connect() as conn:
        pending = await conn.scalar(select(func.count()).where(p.c.id.in_([good, too_short])))
    assert pending == 0


async def test_a_submission_another_worker_holds_is_busy_and_the_rest_of_the_batch_imports(
    importer: SubmissionImporter, databases: Databases, submit: Submit, make_hashes: Any
) -> None:
    held, free = await submit(make_hashes(), make_hashes())
    s = ingest_db.submission
    async with databases.ingest.begin() as other:
        await other.execute(select(s.c.id).where(s.c.id == held).with_for_update())

        outcomes = await importer.import_batch([held, free])

    assert outcomes == {held: ImportOutcome.BUSY, free: ImportOutcome.IMPORTED}
    assert held not in await results(databases, [held])


async def test_two_batches_at_once_with_the_same_song_put_it_on_one_track(
    importer: SubmissionImporter, databases: Databases, submit: Submit, make_hashes: Any
) -> None:
    songs = [make_hashes() for _ in range(6)]
    mbids = [uuid.uuid4() for _ in songs]
    left = [(await submit(song, mbid=mbid))[0] for song, mbid in zip(songs, mbids, strict=True)]
    right = [
        (await submit(make_hashes(like=song, noise=0.25), mbid=mbid))[0]
        for song, mbid in zip(songs, mbids, strict=True)
    ]

    # opposite orders: the locks of both batches overlap completely
    await asyncio.gather(importer.import_batch(left), importer.import_batch(right[::-1]))

    found = await results(databases, left + right)
    for a, b, mbid in zip(left, right, mbids, strict=True):
        assert found[a].fingerprint_id == found[b].fingerprint_id
        assert await mbid_count(databases, found[a].track_id, mbid) == 2
