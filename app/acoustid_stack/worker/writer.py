"""A planned batch written with grouped statements: a few per table, not a few per submission.

`write_fingerprints` runs in the fingerprint-database transaction (tracks, fingerprints,
submission counts, links); `finish_submissions` in the ingest transaction that holds the
claimed rows (results, provenance, handled, no longer pending). Statements touching shared
rows (reused fingerprints, links) take them in key order, which keeps two concurrent batches
from locking the same rows in opposite orders.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Table, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from acoustid_stack.db.schema import fingerprint as fp_db
from acoustid_stack.db.schema import ingest as ingest_db
from acoustid_stack.index.interfaces import Insert
from acoustid_stack.worker.planner import BatchPlan
from acoustid_stack.worker.submission import META_FIELDS, Importable


@dataclass
class Imported:
    """What one imported submission became; the ingest side records it."""

    item: Importable
    source_id: int
    format_id: int | None
    fingerprint_id: int
    track_id: int
    track_gid: uuid.UUID
    meta_id: int | None = None
    meta_gid: uuid.UUID | None = None
    foreignid_id: int | None = None
    # (track_<x>_source table, its link-id column, link id), one per linked value
    link_sources: list[tuple[Table, str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class Origin:
    """Where a submission came from, in the app database."""

    source_id: int
    format_id: int | None


async def write_fingerprints(
    conn: AsyncConnection,
    batch: Sequence[Importable],
    plan: BatchPlan,
    origins: Sequence[Origin],
) -> tuple[list[Imported], list[Insert]]:
    """Write the plan; the imported submissions (aligned with `batch`) and the index inserts
    of the new fingerprints, for the caller to send before it commits."""
    new_track_ids = await _allocate(conn, "track", len(plan.new_tracks))
    track_ids = dict(zip(plan.new_tracks, new_track_ids, strict=True))
    new_gids = {track_ids[ref]: uuid.uuid4() for ref in plan.new_tracks}
    if new_gids:
        await conn.execute(
            fp_db.track.insert(), [{"id": i, "gid": gid} for i, gid in new_gids.items()]
        )
    new_fingerprint_ids = await _allocate(conn, "fingerprint", len(plan.new_fingerprints))
    fingerprint_ids = dict(
        zip((new.ref for new in plan.new_fingerprints), new_fingerprint_ids, strict=True)
    )

    def real(ids: Mapping[int, int], value: int) -> int:
        return ids[value] if value < 0 else value

    inserts: list[Insert] = []
    columns: dict[str, list[Any]] = defaultdict(list)
    for new in plan.new_fingerprints:
        item, origin = batch[new.source], origins[new.source]
        fingerprint_id = fingerprint_ids[new.ref]
        columns["ids"].append(fingerprint_id)
        columns["fingerprints"].append(item.hashes_text)
        columns["lengths"].append(item.length)
        columns["bitrates"].append(item.row.bitrate)
        columns["format_ids"].append(origin.format_id)
        columns["track_ids"].append(real(track_ids, new.track_id))
        columns["counts"].append(1 + plan.reuses[new.ref])
        inserts.append(Insert(fingerprint_id, item.terms.view(np.uint32)))
    if inserts:
        await conn.execute(_INSERT_FINGERPRINTS, columns)
    reused = sorted((i, n) for i, n in plan.reuses.items() if i > 0)
    if reused:
        await conn.execute(
            _COUNT_REUSES, {"ids": [i for i, _ in reused], "counts": [n for _, n in reused]}
        )

    gids = dict(new_gids)
    stored_tracks = {p.track_id for p in plan.placements if p.track_id > 0}
    if stored_tracks:
        t = fp_db.track
        found = await conn.execute(select(t.c.id, t.c.gid).where(t.c.id.in_(sorted(stored_tracks))))
        gids |= {row.id: row.gid for row in found}
    imported = []
    for item, origin, placement in zip(batch, origins, plan.placements, strict=True):
        track_id = real(track_ids, placement.track_id)
        imported.append(
            Imported(
                item=item,
                source_id=origin.source_id,
                format_id=origin.format_id,
                fingerprint_id=real(fingerprint_ids, placement.fingerprint_id),
                track_id=track_id,
                track_gid=gids[track_id],
            )
        )
    await _write_links(conn, imported)
    return imported, inserts


# Identity columns own a sequence; taking ids first lets one statement insert many rows and
# the plan's negative refs map to real ids without relying on RETURNING order.
_ALLOCATE = text(
    "SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :count)"
)
# Hashes go in as the text the ingest database printed them in (`Importable.hashes_text`).
_INSERT_FINGERPRINTS = text(
    "INSERT INTO fingerprint "
    "(id, fingerprint, length, bitrate, format_id, track_id, submission_count) "
    "SELECT id, CAST(fingerprint AS int[]), length, bitrate, format_id, track_id, n "
    "FROM unnest(CAST(:ids AS int[]), CAST(:fingerprints AS text[]), "
    "CAST(:lengths AS smallint[]), CAST(:bitrates AS smallint[]), CAST(:format_ids AS int[]), "
    "CAST(:track_ids AS int[]), CAST(:counts AS int[])) "
    "AS new(id, fingerprint, length, bitrate, format_id, track_id, n)"
)
_COUNT_REUSES = text(
    "UPDATE fingerprint AS f SET submission_count = f.submission_count + d.n, updated = now() "
    "FROM unnest(CAST(:ids AS int[]), CAST(:counts AS int[])) AS d(id, n) WHERE f.id = d.id"
)


async def _allocate(conn: AsyncConnection, table: str, count: int) -> list[int]:
    if count == 0:
        return []
    return [int(i) for i in await conn.scalars(_ALLOCATE, {"table": table, "count": count})]


async def _write_links(conn: AsyncConnection, imported: Sequence[Imported]) -> None:
    """track_mbid/puid/meta/foreignid: one upsert per table for the batch."""
    meta_ids: dict[tuple[Any, ...], tuple[int, uuid.UUID]] = {}
    foreignid_ids: dict[str, int] = {}
    for entry in imported:
        links = entry.item.links
        if links.meta:
            key = tuple(links.meta.get(name) for name in META_FIELDS)
            if key not in meta_ids:
                meta_ids[key] = await _find_or_insert_meta(conn, links.meta)
            entry.meta_id, entry.meta_gid = meta_ids[key]
        if links.foreignid:
            if links.foreignid not in foreignid_ids:
                foreignid_ids[links.foreignid] = await _find_or_insert_foreignid(
                    conn, links.foreignid
                )
            entry.foreignid_id = foreignid_ids[links.foreignid]
    kinds: list[tuple[Table, Table, str, Any]] = [
        (fp_db.track_mbid, ingest_db.track_mbid_source, "mbid", lambda e: e.item.links.mbid),
        (fp_db.track_puid, ingest_db.track_puid_source, "puid", lambda e: e.item.links.puid),
        (fp_db.track_meta, ingest_db.track_meta_source, "meta_id", lambda e: e.meta_id),
        (
            fp_db.track_foreignid,
            ingest_db.track_foreignid_source,
            "foreignid_id",
            lambda e: e.foreignid_id,
        ),
    ]
    for table, source_table, column, value_of in kinds:
        wanted = [(entry, value_of(entry)) for entry in imported]
        counts = Counter((entry.track_id, value) for entry, value in wanted if value is not None)
        if not counts:
            continue
        link_ids = await _count_links(conn, table, column, counts)
        for entry, value in wanted:
            if value is not None:
                entry.link_sources.append(
                    (source_table, f"{table.name}_id", link_ids[(entry.track_id, value)])
                )


async def _count_links(
    conn: AsyncConnection, table: Table, column: str, counts: Mapping[tuple[int, Any], int]
) -> dict[tuple[int, Any], int]:
    """Add the submissions to each (track, value) link, creating it; the links' ids."""
    values = [
        {"track_id": track_id, column: value, "submission_count": n}
        for (track_id, value), n in sorted(counts.items(), key=lambda kv: (kv[0][0], str(kv[0][1])))
    ]
    upsert = insert(table).values(values)
    statement = upsert.on_conflict_do_update(
        index_elements=[table.c.track_id, table.c[column]],
        set_={
            "submission_count": table.c.submission_count + upsert.excluded.submission_count,
            "updated": func.now(),
        },
    ).returning(table.c.id, table.c.track_id, table.c[column])
    return {(row[1], row[2]): int(row[0]) for row in await conn.execute(statement)}


async def find_or_insert(conn: AsyncConnection, table: Table, values: Mapping[str, Any]) -> int:
    """Id of the row with exactly these values (unique constraint), inserting it if needed."""
    inserted = await conn.scalar(
        insert(table).values(**values).on_conflict_do_nothing().returning(table.c.id)
    )
    if inserted is not None:
        return int(inserted)
    condition = [table.c[key].is_not_distinct_from(value) for key, value in values.items()]
    return int(await conn.scalar(select(table.c.id).where(*condition)))  # type: ignore[arg-type]


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
    vendor_id = await find_or_insert(conn, fp_db.foreignid_vendor, {"name": vendor})
    return await find_or_insert(conn, fp_db.foreignid, {"vendor_id": vendor_id, "name": name})


_MARK_IMPORTED = (
    update(ingest_db.submission)
    .where(ingest_db.submission.c.id == bindparam("b_id"))
    .values(
        handled=True,
        handled_at=func.now(),
        source_id=bindparam("b_source_id"),
        format_id=bindparam("b_format_id"),
        meta_id=bindparam("b_meta_id"),
        meta_gid=bindparam("b_meta_gid"),
        foreignid_id=bindparam("b_foreignid_id"),
    )
)


async def finish_submissions(
    conn: AsyncConnection, imported: Sequence[Imported], rejected: Sequence[int]
) -> None:
    """Mark the batch handled and no longer pending; results and provenance of the imported."""
    s, p = ingest_db.submission, ingest_db.pending_submission
    if rejected:
        await conn.execute(
            update(s).where(s.c.id.in_(rejected)).values(handled=True, handled_at=func.now())
        )
    if imported:
        await conn.execute(
            _MARK_IMPORTED,
            [
                {
                    "b_id": e.item.id,
                    "b_source_id": e.source_id,
                    "b_format_id": e.format_id,
                    "b_meta_id": e.meta_id,
                    "b_meta_gid": e.meta_gid,
                    "b_foreignid_id": e.foreignid_id,
                }
                for e in imported
            ],
        )
        await conn.execute(ingest_db.submission_result.insert(), [_result(e) for e in imported])
        await conn.execute(
            ingest_db.fingerprint_source.insert(),
            [
                {
                    "fingerprint_id": e.fingerprint_id,
                    "submission_id": e.item.id,
                    "source_id": e.source_id,
                }
                for e in imported
            ],
        )
        by_table: defaultdict[Table, list[dict[str, Any]]] = defaultdict(list)
        for e in imported:
            for table, column, link_id in e.link_sources:
                by_table[table].append(
                    {column: link_id, "submission_id": e.item.id, "source_id": e.source_id}
                )
        for table, rows in by_table.items():
            await conn.execute(table.insert(), rows)
    handled = sorted([*rejected, *(e.item.id for e in imported)])
    await conn.execute(p.delete().where(p.c.id.in_(handled)))


def _result(e: Imported) -> dict[str, Any]:
    row, links = e.item.row, e.item.links
    return {
        "submission_id": row.id,
        "account_id": row.account_id,
        "application_id": row.application_id,
        "application_version": row.application_version,
        "fingerprint_id": e.fingerprint_id,
        "track_id": e.track_id,
        "track_gid": e.track_gid,
        "meta_id": e.meta_id,
        "meta_gid": e.meta_gid,
        "mbid": links.mbid,
        "puid": links.puid,
        "foreignid": links.foreignid,
    }
