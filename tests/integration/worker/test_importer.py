"""Importing submissions on the real databases and a real index server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from sqlalchemy import func, select

from acoustid_stack.db.schema import fingerprint as fp_db
from acoustid_stack.db.schema import ingest as ingest_db
from acoustid_stack.fingerprint import extract_query
from acoustid_stack.index.client import ShardedIndexClient
from acoustid_stack.submissions.databases import Databases
from acoustid_stack.worker.importer import SubmissionImporter
from acoustid_stack.worker.interfaces import ImportOutcome

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

Hashes = NDArray[np.int32]
Submit = Callable[..., Awaitable[list[int]]]


async def result_of(databases: Databases, submission_id: int) -> Any:
    r = ingest_db.submission_result
    async with databases.ingest.connect() as conn:
        return (await conn.execute(select(r).where(r.c.submission_id == submission_id))).one()


async def submission_row(databases: Databases, submission_id: int) -> Any:
    s, p = ingest_db.submission, ingest_db.pending_submission
    async with databases.ingest.connect() as conn:
        row = (await conn.execute(select(s).where(s.c.id == submission_id))).one()
        pending = await conn.scalar(select(func.count()).where(p.c.id == submission_id))
    return row, bool(pending)


async def counts(databases: Databases, track_id: int) -> dict[str, int]:
    async with databases.fingerprint.connect() as conn:
        return {
            "fingerprints": int(
                await conn.scalar(
                    select(func.count()).where(fp_db.fingerprint.c.track_id == track_id)
                )
                or 0
            ),
            "submissions": int(
                await conn.scalar(
                    select(func.sum(fp_db.fingerprint.c.submission_count)).where(
                        fp_db.fingerprint.c.track_id == track_id
                    )
                )
                or 0
            ),
        }


async def test_a_submission_becomes_a_fingerprint_on_a_new_track_with_its_mbid_and_index_terms(
    importer: SubmissionImporter,
    databases: Databases,
    index: ShardedIndexClient,
    submit: Submit,
    make_hashes: Any,
) -> None:
    hashes = make_hashes()
    mbid = uuid.uuid4()
    [submission_id] = await submit(hashes, mbid=mbid, format="FLAC", bitrate=900)

    assert await importer.import_submission(submission_id) is ImportOutcome.IMPORTED

    result = await result_of(databases, submission_id)
    assert result.mbid == mbid
    f, t, tm = fp_db.fingerprint, fp_db.track, fp_db.track_mbid
    async with databases.fingerprint.connect() as conn:
        stored = (await conn.execute(select(f).where(f.c.id == result.fingerprint_id))).one()
        track = (await conn.execute(select(t).where(t.c.id == stored.track_id))).one()
        link = (await conn.execute(select(tm).where(tm.c.track_id == track.id))).one()
    assert stored.fingerprint == hashes.tolist()
    assert (stored.length, stored.bitrate, stored.submission_count) == (120, 900, 1)
    assert track.gid == result.track_gid
    assert (link.mbid, link.submission_count) == (mbid, 1)
    row, pending = await submission_row(databases, submission_id)
    assert row.handled
    assert row.handled_at is not None
    assert not pending
    assert row.source_id is not None
    assert row.format_id is not None
    hits = await index.search(extract_query(hashes).view(np.uint32).tolist())
    assert hits[0].id == result.fingerprint_id
    assert hits[0].score == extract_query(hashes).size


async def test_importing_the_same_submission_again_changes_nothing(
    importer: SubmissionImporter, databases: Databases, submit: Submit, make_hashes: Any
) -> None:
    [submission_id] = await submit(make_hashes())
    await importer.import_submission(submission_id)
    first = await result_of(databases, submission_id)
    before = await counts(databases, first.track_id)

    assert await importer.import_submission(submission_id) is ImportOutcome.ALREADY_HANDLED

    assert await counts(databases, first.track_id) == before
    assert await result_of(databases, submission_id) == first


async def test_two_deliveries_of_one_submission_at_once_import_it_once(
    importer: SubmissionImporter, databases: Databases, submit: Submit, make_hashes: Any
) -> None:
    [submission_id] = await submit(make_hashes())

    outcomes = await asyncio.gather(*(importer.import_submission(submission_id) for _ in range(4)))

    assert outcomes.count(ImportOutcome.IMPORTED) == 1
    assert set(outcomes) <= {
        ImportOutcome.IMPORTED,
        ImportOutcome.BUSY,
        ImportOutcome.ALREADY_HANDLED,
    }
    result = await result_of(databases, submission_id)
    assert await counts(databases, result.track_id) == {"fingerprints": 1, "submissions": 1}


async def test_a_nearly_identical_fingerprint_reuses_the_stored_fingerprint(
    importer: SubmissionImporter, databases: Databases, submit: Submit, make_hashes: Any
) -> None:
    original: Hashes = make_hashes()
    mbid = uuid.uuid4()
    first_id, second_id = await submit(original, make_hashes(like=original, noise=0.25), mbid=mbid)
    await importer.import_submission(first_id)

    assert await importer.import_submission(second_id) is ImportOutcome.IMPORTED

    first, second = await result_of(databases, first_id), await result_of(databases, second_id)
    assert second.fingerprint_id == first.fingerprint_id
    assert await counts(databases, first.track_id) == {"fingerprints": 1, "submissions": 2}
    tm = fp_db.track_mbid
    async with databases.fingerprint.connect() as conn:
        link = (await conn.execute(select(tm).where(tm.c.track_id == first.track_id))).one()
    assert link.submission_count == 2


async def test_a_similar_fingerprint_joins_the_track_as_a_new_fingerprint(
    importer: SubmissionImporter, databases: Databases, submit: Submit, make_hashes: Any
) -> None:
    original: Hashes = make_hashes()
    first_id, second_id = await submit(original, make_hashes(like=original, noise=0.8))
    await importer.import_submission(first_id)

    await importer.import_submission(second_id)

    first, second = await result_of(databases, first_id), await result_of(databases, second_id)
    assert second.track_id == first.track_id
    assert second.fingerprint_id != first.fingerprint_id
    assert await counts(databases, first.track_id) == {"fingerprints": 2, "submissions": 2}


async def test_a_similar_fingerprint_of_a_different_length_gets_its_own_track(
    importer: SubmissionImporter, databases: Databases, submit: Submit, make_hashes: Any
) -> None:
    original: Hashes = make_hashes()
    [first_id] = await submit(original, length=120)
    [second_id] = await submit(make_hashes(like=original, noise=0.25), length=140)
    await importer.import_submission(first_id)

    await importer.import_submission(second_id)

    first, second = await result_of(databases, first_id), await result_of(databases, second_id)
    assert second.track_id != first.track_id


async def test_an_unrelated_fingerprint_gets_a_new_track(
    importer: SubmissionImporter, databases: Databases, submit: Submit, make_hashes: Any
) -> None:
    first_id, second_id = await submit(make_hashes(), make_hashes())
    await importer.import_submission(first_id)
    await importer.import_submission(second_id)

    first, second = await result_of(databases, first_id), await result_of(databases, second_id)
    assert second.track_id != first.track_id


async def test_a_fingerprint_with_fewer_than_80_distinct_hashes_is_rejected_without_a_result(
    importer: SubmissionImporter, databases: Databases, submit: Submit, make_hashes: Any
) -> None:
    repetitive = np.tile(make_hashes(79), 8)
    [submission_id] = await submit(repetitive)

    assert await importer.import_submission(submission_id) is ImportOutcome.REJECTED

    row, pending = await submission_row(databases, submission_id)
    assert row.handled
    assert not pending
    r = ingest_db.submission_result
    async with databases.ingest.connect() as conn:
        assert (
            await conn.scalar(select(func.count()).where(r.c.submission_id == submission_id)) == 0
        )


async def test_a_submission_without_mbid_puid_meta_or_foreign_id_is_rejected(
    importer: SubmissionImporter, submit: Submit, make_hashes: Any
) -> None:
    [submission_id] = await submit(make_hashes(), mbid=None)

    assert await importer.import_submission(submission_id) is ImportOutcome.REJECTED


async def test_meta_puid_and_foreign_id_are_linked_and_their_sources_recorded(
    importer: SubmissionImporter, databases: Databases, submit: Submit, make_hashes: Any
) -> None:
    meta = {"track": "Song", "artist": "Band", "album": "Record", "year": 1999}
    puid = uuid.uuid4()
    [submission_id] = await submit(
        make_hashes(), mbid=None, puid=puid, meta=meta, foreignid="vendor:abc"
    )

    assert await importer.import_submission(submission_id) is ImportOutcome.IMPORTED

    result = await result_of(databases, submission_id)
    assert (result.puid, result.foreignid) == (puid, "vendor:abc")
    m = fp_db.meta
    async with databases.fingerprint.connect() as conn:
        stored = (await conn.execute(select(m).where(m.c.id == result.meta_id))).one()
    assert (stored.track, stored.artist, stored.album, stored.year) == (
        "Song",
        "Band",
        "Record",
        1999,
    )
    async with databases.ingest.connect() as conn:
        for table in (
            ingest_db.fingerprint_source,
            ingest_db.track_puid_source,
            ingest_db.track_meta_source,
            ingest_db.track_foreignid_source,
        ):
            count = await conn.scalar(
                select(func.count()).where(table.c.submission_id == submission_id)
            )
            assert count == 1, table.name


async def test_equal_meta_and_foreign_ids_are_found_again_and_meta_gids_are_upstreams(
    importer: SubmissionImporter, databases: Databases, submit: Submit, make_hashes: Any
) -> None:
    title = f"Söng {uuid.uuid4().hex}"  # the session's databases are shared between tests
    meta = {"track": title, "artist": "Band", "track_no": 3}
    foreignid = f"vendor:{title}"
    first = await submit(make_hashes(), mbid=None, meta=meta, foreignid=foreignid)
    later = [
        (await submit(make_hashes(), mbid=None, meta=meta, foreignid=foreignid))[0]
        for _ in range(2)
    ]

    assert await importer.import_submission(first[0]) is ImportOutcome.IMPORTED
    assert set((await importer.import_batch(later)).values()) == {ImportOutcome.IMPORTED}

    results = [await result_of(databases, i) for i in (*first, *later)]
    assert len({(r.meta_id, r.meta_gid) for r in results}) == 1
    # upstream's generate_meta_gid: uuid5 of the set fields as compact JSON
    upstream = uuid.uuid5(
        uuid.UUID("3b3bd228-5d2c-11ea-b498-60f67731bf41"),
        f'{{"track":"{title}","artist":"Band","track_no":3}}',
    )
    assert results[0].meta_gid == upstream
    m, f = fp_db.meta, fp_db.foreignid
    async with databases.fingerprint.connect() as conn:
        assert await conn.scalar(select(func.count()).where(m.c.track == title)) == 1
        assert await conn.scalar(select(func.count()).where(f.c.name == title)) == 1


async def test_an_unknown_submission_id_is_reported_missing(importer: SubmissionImporter) -> None:
    assert await importer.import_submission(2**40) is ImportOutcome.MISSING
