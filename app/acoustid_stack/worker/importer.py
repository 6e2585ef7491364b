"""Import one submission: from an ingest row to a fingerprint, a track and its links.

Idempotent by submission id: the ingest row is locked `FOR UPDATE NOWAIT` first and an
already handled row is left alone, so a redelivered message changes nothing.

Three databases take part and PostgreSQL cannot commit them atomically without prepared
transactions (off in stock and most managed servers). The order makes a crash safe:

1. app: find-or-insert `source` and `format` in their own short transactions (repeatable).
2. ingest: lock the submission row (held until step 6).
3. fingerprint: take the advisory locks, search, write track/fingerprint/links.
4. index: insert the new fingerprint's query terms into its shard (before the commit, so a
   committed fingerprint is always searchable; an id whose transaction then rolls back is
   skipped by searches, which load hashes from the database).
5. commit fingerprint, 6. commit ingest (result, provenance, handled, not pending).

A crash between 5 and 6 leaves the submission pending; its redelivery finds the fingerprint
committed in 5 (score 1.0) and reuses it, so the only trace is one extra `submission_count`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from psycopg.errors import LockNotAvailable
from sqlalchemy import Row, Table, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from acoustid_stack.db.schema import app as app_db
from acoustid_stack.db.schema import fingerprint as fp_db
from acoustid_stack.db.schema import ingest as ingest_db
from acoustid_stack.fingerprint import extract_query, score_candidates
from acoustid_stack.index.interfaces import FingerprintIndex
from acoustid_stack.matching import Candidate, FingerprintMatch, Matcher
from acoustid_stack.matching.candidates import load_candidates
from acoustid_stack.submissions.databases import Databases
from acoustid_stack.worker.interfaces import ImportOutcome
from acoustid_stack.worker.locks import simhash, take_import_locks

logger = logging.getLogger(__name__)

# Upstream constants (reference §3.3).
TRACK_MERGE_THRESHOLD = 0.75
TRACK_GROUP_MERGE_THRESHOLD = 0.4
TRACK_MAX_OFFSET = 80
FINGERPRINT_MERGE_THRESHOLD = 0.9
FINGERPRINT_MIN_UNIQUE_ITEMS = 80
FINGERPRINT_MAX_LENGTH_DIFF = 7
# A stuck statement must not hold the submission row and advisory locks for ever; a lock
# held longer than LOCK_TIMEOUT by another import makes this one "busy" (retried later).
STATEMENT_TIMEOUT_MS = 60_000
LOCK_TIMEOUT_MS = 10_000
_TIMEOUTS = (
    f"SELECT set_config('statement_timeout', '{STATEMENT_TIMEOUT_MS}', true), "
    f"set_config('lock_timeout', '{LOCK_TIMEOUT_MS}', true)"
)

META_FIELDS = ("track", "artist", "album", "album_artist", "track_no", "disc_no", "year")
NIL_UUID = uuid.UUID(int=0)


@dataclass(frozen=True)
class _Links:
    """The identifiers a submission links to its track (resolved ids where they exist)."""

    mbid: uuid.UUID | None
    puid: uuid.UUID | None
    meta: dict[str, Any] | None
    foreignid: str | None

    def empty(self) -> bool:
        return not (self.mbid or self.puid or self.meta or self.foreignid)


class SubmissionImporter:
    """Imports submissions by id into the fingerprint database and the index."""

    def __init__(
        self, *, databases: Databases, index: FingerprintIndex, search_timeout: float = 1.0
    ) -> None:
        self._db = databases
        self._index = index
        self._search_timeout = search_timeout
        # (application_id, account_id, version) -> source id; format name -> id. Rows are
        # never deleted, so a cached id stays valid; this saves a transaction per import.
        self._sources: dict[tuple[int, int, str | None], int] = {}
        self._formats: dict[str, int] = {}

    async def import_submission(self, submission_id: int) -> ImportOutcome:
        """Import one submission; safe to call again for the same id (see module docstring).

        Raises on database or index failures; nothing is committed then, and the caller
        retries later.
        """
        async with self._db.ingest.connect() as ingest:
            await ingest.begin()
            try:
                row = await _lock_submission(ingest, submission_id)
            except _SubmissionBusy:
                await ingest.rollback()
                return ImportOutcome.BUSY
            if row is None:
                await ingest.rollback()
                return ImportOutcome.MISSING
            if row.handled:
                await ingest.rollback()
                return ImportOutcome.ALREADY_HANDLED
            hashes = np.asarray(row.fingerprint, dtype=np.int32)
            links = _links_of(row)
            if links.empty() or not _importable(hashes):
                await _finish(ingest, row, {})
                await ingest.commit()
                return ImportOutcome.REJECTED
            source_id, format_id = await self._source_and_format(row)
            async with self._db.fingerprint.connect() as fingerprint:
                await fingerprint.begin()
                await fingerprint.execute(text(_TIMEOUTS))
                try:
                    await take_import_locks(
                        fingerprint, fingerprint_hash=simhash(hashes), mbid=links.mbid
                    )
                except OperationalError as exc:
                    if not isinstance(exc.orig, LockNotAvailable):
                        raise
                    await fingerprint.rollback()
                    await ingest.rollback()
                    return ImportOutcome.BUSY
                result = await self._write_fingerprint(
                    fingerprint,
                    ingest,
                    row,
                    hashes=hashes,
                    links=links,
                    source_id=source_id,
                    format_id=format_id,
                )
                await fingerprint.commit()
            await _finish(ingest, row, result)
            await ingest.commit()
        logger.debug("imported submission %d: %s", submission_id, result)
        return ImportOutcome.IMPORTED

    async def _source_and_format(self, row: Row[Any]) -> tuple[int, int | None]:
        source_key = (row.application_id, row.account_id, row.application_version)
        source_id = self._sources.get(source_key)
        format_id = self._formats.get(row.format) if row.format else None
        if source_id is None or (row.format and format_id is None):
            async with self._db.app.begin() as app:
                source_id = await _find_or_insert(
                    app,
                    app_db.source,
                    {
                        "application_id": row.application_id,
                        "account_id": row.account_id,
                        "version": row.application_version,
                    },
                )
                if row.format:
                    format_id = await _find_or_insert(app, app_db.format, {"name": row.format})
                    self._formats[row.format] = format_id
            self._sources[source_key] = source_id
        return source_id, format_id

    async def _write_fingerprint(
        self,
        fingerprint: AsyncConnection,
        ingest: AsyncConnection,
        row: Row[Any],
        *,
        hashes: NDArray[np.int32],
        links: _Links,
        source_id: int,
        format_id: int | None,
    ) -> dict[str, Any]:
        """Track, fingerprint and links in the fingerprint database; provenance in ingest."""
        track_id, reuse_id = await self._choose_track(fingerprint, hashes, row.length)
        if track_id is None:
            track_gid: uuid.UUID | None = uuid.uuid4()
            track_id = await fingerprint.scalar(
                fp_db.track.insert().values(gid=track_gid).returning(fp_db.track.c.id)
            )
        else:
            track_gid = await fingerprint.scalar(
                select(fp_db.track.c.gid).where(fp_db.track.c.id == track_id)
            )
        if reuse_id is not None:
            fingerprint_id = reuse_id
            await fingerprint.execute(
                update(fp_db.fingerprint)
                .where(fp_db.fingerprint.c.id == reuse_id)
                .values(
                    submission_count=fp_db.fingerprint.c.submission_count + 1,
                    updated=func.now(),
                )
            )
        else:
            fingerprint_id = await fingerprint.scalar(
                fp_db.fingerprint.insert()
                .values(
                    fingerprint=hashes.tolist(),
                    length=row.length,
                    bitrate=row.bitrate,
                    format_id=format_id,
                    track_id=track_id,
                )
                .returning(fp_db.fingerprint.c.id)
            )
        sources: list[tuple[Table, dict[str, Any]]] = [
            (
                ingest_db.fingerprint_source,
                {"fingerprint_id": fingerprint_id, "source_id": source_id},
            )
        ]
        result: dict[str, Any] = {
            "fingerprint_id": fingerprint_id,
            "track_id": track_id,
            "track_gid": track_gid,
            "source_id": source_id,
            "format_id": format_id,
        }
        if links.mbid:
            link_id = await _count_link(fingerprint, fp_db.track_mbid, track_id, links.mbid)
            sources.append((ingest_db.track_mbid_source, {"track_mbid_id": link_id}))
            result["mbid"] = links.mbid
        if links.puid:
            link_id = await _count_link(fingerprint, fp_db.track_puid, track_id, links.puid)
            sources.append((ingest_db.track_puid_source, {"track_puid_id": link_id}))
            result["puid"] = links.puid
        if links.meta:
            meta_id, meta_gid = await _find_or_insert_meta(fingerprint, links.meta)
            link_id = await _count_link(fingerprint, fp_db.track_meta, track_id, meta_id)
            sources.append((ingest_db.track_meta_source, {"track_meta_id": link_id}))
            result |= {"meta_id": meta_id, "meta_gid": meta_gid}
        if links.foreignid:
            foreignid_id = await _find_or_insert_foreignid(fingerprint, links.foreignid)
            link_id = await _count_link(fingerprint, fp_db.track_foreignid, track_id, foreignid_id)
            sources.append((ingest_db.track_foreignid_source, {"track_foreignid_id": link_id}))
            result |= {"foreignid": links.foreignid, "foreignid_id": foreignid_id}
        for table, values in sources:
            values.setdefault("source_id", source_id)
            await ingest.execute(table.insert().values(submission_id=row.id, **values))
        if reuse_id is None:
            terms = extract_query(hashes).view(np.uint32)
            await self._index.insert(fingerprint_id, terms.tolist())
        return result

    async def _choose_track(
        self, conn: AsyncConnection, hashes: NDArray[np.int32], length: int
    ) -> tuple[int | None, int | None]:
        """(track to join, fingerprint to reuse): upstream's rule (reference §4.2 step 4).

        Matched tracks are tried best first; the first whose every fingerprint is close
        enough (score ≥ 0.4, length within 7 s) is chosen, and the matched fingerprint is
        reused when it scored > 0.9.
        """
        # Candidates are read on the import's own connection: inside its transaction, after
        # the advisory locks, and without a second pooled connection per import (which could
        # exhaust the pool with every import holding one and waiting for another).
        matcher = Matcher(
            index=self._index,
            candidates=_CandidatesOn(conn),
            search_timeout=self._search_timeout,
        )
        matches = await matcher.find(hashes, length, min_score=TRACK_MERGE_THRESHOLD)
        best_per_track: dict[int, FingerprintMatch] = {}
        for match in sorted(matches, key=lambda m: (-m.score, m.fingerprint_id)):
            best_per_track.setdefault(match.track_id, match)
        for track_id, match in best_per_track.items():
            if await _fits_track(conn, track_id, hashes, length):
                reuse = match.fingerprint_id if match.score > FINGERPRINT_MERGE_THRESHOLD else None
                return track_id, reuse
        return None, None


class _CandidatesOn:
    """The matcher's CandidateStore, reading on one connection the caller holds."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def load(
        self, ids: Sequence[int], *, min_length: int, max_length: int
    ) -> list[Candidate]:
        return await load_candidates(self._conn, ids, min_length=min_length, max_length=max_length)


class _SubmissionBusy(Exception):
    """Another worker holds the submission row (a concurrent redelivery)."""


async def _lock_submission(conn: AsyncConnection, submission_id: int) -> Row[Any] | None:
    """The submission row, locked for this transaction; None if absent.

    Raises _SubmissionBusy instead of waiting when another transaction holds the row.
    """
    s = ingest_db.submission
    try:
        result = await conn.execute(
            select(s).where(s.c.id == submission_id).with_for_update(nowait=True)
        )
    except OperationalError as exc:
        if isinstance(exc.orig, LockNotAvailable):
            raise _SubmissionBusy from exc
        raise
    return result.one_or_none()


def _importable(hashes: NDArray[np.int32]) -> bool:
    """Enough distinct hashes to be a real recording (upstream: ≥ 80, and a non-empty query)."""
    if np.unique(hashes).size < FINGERPRINT_MIN_UNIQUE_ITEMS:
        return False
    return bool(extract_query(hashes).size)


def _links_of(row: Row[Any]) -> _Links:
    meta = {key: row.meta[key] for key in META_FIELDS if row.meta and row.meta.get(key)}
    return _Links(
        mbid=row.mbid if row.mbid and row.mbid != NIL_UUID else None,
        puid=row.puid if row.puid and row.puid != NIL_UUID else None,
        meta=meta or None,
        foreignid=row.foreignid or None,
    )


async def _fits_track(
    conn: AsyncConnection, track_id: int, hashes: NDArray[np.int32], length: int
) -> bool:
    f = fp_db.fingerprint
    rows = (
        await conn.execute(select(f.c.fingerprint, f.c.length).where(f.c.track_id == track_id))
    ).all()
    if any(abs(row.length - length) > FINGERPRINT_MAX_LENGTH_DIFF for row in rows):
        return False
    scores = score_candidates(
        hashes,
        [np.asarray(row.fingerprint, dtype=np.int32) for row in rows],
        max_offset=TRACK_MAX_OFFSET,
    )
    return bool(np.all(scores >= TRACK_GROUP_MERGE_THRESHOLD))


async def _find_or_insert(conn: AsyncConnection, table: Table, values: Mapping[str, Any]) -> int:
    """Id of the row with exactly these values (unique constraint), inserting it if needed."""
    inserted = await conn.scalar(
        insert(table).values(**values).on_conflict_do_nothing().returning(table.c.id)
    )
    if inserted is not None:
        return int(inserted)
    condition = [table.c[key].is_not_distinct_from(value) for key, value in values.items()]
    return int(await conn.scalar(select(table.c.id).where(*condition)))  # type: ignore[arg-type]


async def _count_link(conn: AsyncConnection, table: Table, track_id: int, value: Any) -> int:
    """Add one submission to the (track, value) link, creating it; the link's id."""
    value_column = next(c for c in table.c if c.name not in _LINK_COMMON)
    statement = insert(table).values({"track_id": track_id, value_column.name: value})
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.track_id, value_column],
        set_={"submission_count": table.c.submission_count + 1, "updated": func.now()},
    )
    return int(await conn.scalar(statement.returning(table.c.id)))


_LINK_COMMON = frozenset(
    {"id", "track_id", "submission_count", "disabled", "merged_into", "created", "updated"}
)


async def _find_or_insert_meta(
    conn: AsyncConnection, meta: Mapping[str, Any]
) -> tuple[int, uuid.UUID]:
    """The `meta` row with exactly these fields (absent fields NULL), inserting it if needed.

    No unique constraint spans the seven columns; the advisory import locks keep concurrent
    duplicates rare, and a duplicate row is harmless (both carry the same text).
    """
    m = fp_db.meta
    values = {key: meta.get(key) for key in META_FIELDS}
    condition = [m.c[key].is_not_distinct_from(value) for key, value in values.items()]
    found = (await conn.execute(select(m.c.id, m.c.gid).where(*condition).limit(1))).first()
    if found is None:
        found = (await conn.execute(m.insert().values(**values).returning(m.c.id, m.c.gid))).one()
    return int(found.id), found.gid


async def _find_or_insert_foreignid(conn: AsyncConnection, foreignid: str) -> int:
    """`vendor:name` → `foreignid` id (vendor and name created as needed)."""
    vendor, _, name = foreignid.partition(":")
    vendor_id = await _find_or_insert(conn, fp_db.foreignid_vendor, {"name": vendor})
    return await _find_or_insert(conn, fp_db.foreignid, {"vendor_id": vendor_id, "name": name})


async def _finish(conn: AsyncConnection, row: Row[Any], result: Mapping[str, Any]) -> None:
    """Mark the submission handled and no longer pending; store its result if it imported."""
    s = ingest_db.submission
    values: dict[str, Any] = {"handled": True, "handled_at": func.now()}
    for key in ("source_id", "format_id", "meta_id", "meta_gid", "foreignid_id"):
        if result.get(key) is not None:
            values[key] = result[key]
    await conn.execute(update(s).where(s.c.id == row.id).values(**values))
    if result:
        await conn.execute(
            ingest_db.submission_result.insert().values(
                submission_id=row.id,
                account_id=row.account_id,
                application_id=row.application_id,
                application_version=row.application_version,
                fingerprint_id=result["fingerprint_id"],
                track_id=result["track_id"],
                track_gid=result["track_gid"],
                meta_id=result.get("meta_id"),
                meta_gid=result.get("meta_gid"),
                mbid=result.get("mbid"),
                puid=result.get("puid"),
                foreignid=result.get("foreignid"),
            )
        )
    p = ingest_db.pending_submission
    await conn.execute(p.delete().where(p.c.id == row.id))
