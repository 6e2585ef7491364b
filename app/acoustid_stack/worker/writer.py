"""A planned batch written with set-based statements: one per table, not one per submission.

`write_fingerprints` runs in the fingerprint-database transaction (tracks, fingerprints,
submission counts, metadata, links); `finish_submissions` in the ingest transaction that
holds the claimed rows (results, provenance, handled, no longer pending). Rows are bound as
one array per column (`bulk`); new fingerprints go in with binary COPY, so their hashes are
never printed or parsed as text. Statements touching shared rows (reused fingerprints, links,
metadata) take them in key order, which keeps two concurrent batches from locking the same
rows in opposite orders.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import psycopg
from sqlalchemy import Table, TextClause, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from acoustid_stack.db.int4_arrays import Int4ArrayDumper
from acoustid_stack.db.schema import fingerprint as fp_db
from acoustid_stack.db.schema import ingest as ingest_db
from acoustid_stack.index.interfaces import Insert
from acoustid_stack.worker.bulk import Columns, arrays, insert_rows, unnest
from acoustid_stack.worker.planner import BatchPlan
from acoustid_stack.worker.submission import META_FIELDS, Importable

#: upstream's namespace of meta gids: the same metadata gets the same gid as upstream gives it
META_GID_NAMESPACE = uuid.UUID("3b3bd228-5d2c-11ea-b498-60f67731bf41")


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
    new_tracks = await _insert_tracks(conn, len(plan.new_tracks))
    track_ids = {
        ref: track_id for ref, (track_id, _) in zip(plan.new_tracks, new_tracks, strict=True)
    }
    gids = dict(new_tracks)
    new_fingerprint_ids = await _allocate(conn, "fingerprint", len(plan.new_fingerprints))
    fingerprint_ids = dict(
        zip((new.ref for new in plan.new_fingerprints), new_fingerprint_ids, strict=True)
    )

    def real(ids: Mapping[int, int], value: int) -> int:
        return ids[value] if value < 0 else value

    inserts: list[Insert] = []
    rows: list[tuple[Any, ...]] = []
    for new in plan.new_fingerprints:
        item, origin = batch[new.source], origins[new.source]
        fingerprint_id = fingerprint_ids[new.ref]
        rows.append(
            (
                fingerprint_id,
                item.hashes,
                item.length,
                item.row.bitrate,
                origin.format_id,
                real(track_ids, new.track_id),
                1 + plan.reuses[new.ref],
            )
        )
        inserts.append(Insert(fingerprint_id, item.terms.view(np.uint32)))
    if rows:
        await _copy_fingerprints(conn, rows)
    reused = sorted((i, n) for i, n in plan.reuses.items() if i > 0)
    if reused:
        await conn.execute(
            _COUNT_REUSES, {"ids": [i for i, _ in reused], "counts": [n for _, n in reused]}
        )

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
# New tracks are told apart by their fresh random gids, so RETURNING order does not matter.
_INSERT_TRACKS = text(
    "INSERT INTO track (gid) SELECT unnest(CAST(:gids AS uuid[])) RETURNING id, gid"
)
_COPY_FINGERPRINTS = (
    "COPY fingerprint (id, fingerprint, length, bitrate, format_id, track_id, submission_count) "
    "FROM STDIN (FORMAT BINARY)"
)
_FINGERPRINT_TYPES = ["int4", "int4[]", "int2", "int2", "int4", "int4", "int4"]
_COUNT_REUSES = text(
    "UPDATE fingerprint AS f SET submission_count = f.submission_count + d.n, updated = now() "
    "FROM unnest(CAST(:ids AS int[]), CAST(:counts AS int[])) AS d(id, n) WHERE f.id = d.id"
)


async def _allocate(conn: AsyncConnection, table: str, count: int) -> list[int]:
    if count == 0:
        return []
    return [int(i) for i in await conn.scalars(_ALLOCATE, {"table": table, "count": count})]


async def _insert_tracks(conn: AsyncConnection, count: int) -> list[tuple[int, uuid.UUID]]:
    """`count` new tracks: (id, gid) each."""
    if count == 0:
        return []
    gids = [uuid.uuid4() for _ in range(count)]
    ids = {row.gid: int(row.id) for row in await conn.execute(_INSERT_TRACKS, {"gids": gids})}
    return [(ids[gid], gid) for gid in gids]


async def _copy_fingerprints(conn: AsyncConnection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Binary COPY of fingerprint rows (columns as `_COPY_FINGERPRINTS`, hashes as int32
    arrays) on the connection's psycopg connection, inside its transaction."""
    raw = await conn.get_raw_connection()
    driver = cast("psycopg.AsyncConnection[Any]", raw.driver_connection)
    async with driver.cursor() as cursor:
        cursor.adapters.register_dumper(None, Int4ArrayDumper)
        async with cursor.copy(_COPY_FINGERPRINTS) as copy:
            copy.set_types(_FINGERPRINT_TYPES)
            for row in rows:
                await copy.write_row(row)


def meta_gid(meta: Mapping[str, Any]) -> uuid.UUID:
    """The gid of a `meta` row: derived from its content as upstream derives it (the set
    fields in `META_FIELDS` order as compact JSON), so equal metadata finds its row by the
    unique gid."""
    content = {key: meta[key] for key in META_FIELDS if meta.get(key)}
    source = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    return uuid.uuid5(META_GID_NAMESPACE, source)


_META_COLUMNS: Columns = [
    ("gid", "uuid"),
    ("track", "text"),
    ("artist", "text"),
    ("album", "text"),
    ("album_artist", "text"),
    ("track_no", "int"),
    ("disc_no", "int"),
    ("year", "int"),
]
_LINK_VALUE_TYPES = {"mbid": "uuid", "puid": "uuid", "meta_id": "int", "foreignid_id": "int"}


async def _write_links(conn: AsyncConnection, imported: Sequence[Imported]) -> None:
    """meta and foreignid rows (found or inserted), then track_mbid/puid/meta/foreignid:
    one upsert per table for the batch."""
    metas: dict[uuid.UUID, dict[str, Any]] = {}
    for entry in imported:
        if meta := entry.item.links.meta:
            entry.meta_gid = meta_gid(meta)
            metas[entry.meta_gid] = {"gid": entry.meta_gid} | {
                key: meta.get(key) for key in META_FIELDS
            }
    if metas:
        meta_ids = await _find_or_insert(conn, "meta", _META_COLUMNS, 1, list(metas.values()))
        for entry in imported:
            if entry.meta_gid is not None:
                entry.meta_id = meta_ids[(entry.meta_gid,)]
    foreignids = sorted({e.item.links.foreignid for e in imported if e.item.links.foreignid})
    if foreignids:
        foreignid_ids = await _find_or_insert_foreignids(conn, foreignids)
        for entry in imported:
            if entry.item.links.foreignid:
                entry.foreignid_id = foreignid_ids[entry.item.links.foreignid]
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
        link_ids = await _count_links(conn, table.name, column, counts)
        for entry, value in wanted:
            if value is not None:
                entry.link_sources.append(
                    (source_table, f"{table.name}_id", link_ids[(entry.track_id, value)])
                )


async def _count_links(
    conn: AsyncConnection, table: str, column: str, counts: Mapping[tuple[int, Any], int]
) -> dict[tuple[int, Any], int]:
    """Add the submissions to each (track, value) link, creating it; the links' ids."""
    ordered = sorted(counts.items(), key=lambda kv: (kv[0][0], str(kv[0][1])))
    bound = {
        "track_id": [track_id for (track_id, _), _ in ordered],
        column: [value for (_, value), _ in ordered],
        "submission_count": [n for _, n in ordered],
    }
    rows = await conn.execute(_count_links_statement(table, column), bound)
    return {(row[1], row[2]): int(row[0]) for row in rows}


@functools.cache
def _count_links_statement(table: str, column: str) -> TextClause:
    columns = [
        ("track_id", "int"),
        (column, _LINK_VALUE_TYPES[column]),
        ("submission_count", "int"),
    ]
    return text(
        f"{insert_rows(table, columns).text} "
        f"ON CONFLICT (track_id, {column}) DO UPDATE SET "
        f"submission_count = {table}.submission_count + excluded.submission_count, "
        f"updated = now() RETURNING id, track_id, {column}"
    )


async def _find_or_insert(
    conn: AsyncConnection, table: str, columns: Columns, key: int, rows: Sequence[dict[str, Any]]
) -> dict[tuple[Any, ...], int]:
    """Ids of the rows whose first `key` columns (a unique constraint) have these values,
    inserting the missing ones; by key tuple.

    The insert skips keys another transaction holds (waiting for it to finish first), and
    the select that follows is a new statement, so it sees rows committed meanwhile.
    """
    insert_statement, select_statement = _find_or_insert_statements(table, tuple(columns), key)
    await conn.execute(insert_statement, arrays(rows, columns))
    found = await conn.execute(select_statement, arrays(rows, columns[:key]))
    return {tuple(row[1:]): int(row[0]) for row in found}


@functools.cache
def _find_or_insert_statements(
    table: str, columns: tuple[tuple[str, str], ...], key: int
) -> tuple[TextClause, TextClause]:
    names = ", ".join(name for name, _ in columns[:key])
    positions = ", ".join(str(i + 1) for i in range(key))
    insert_missing = text(
        f"{insert_rows(table, columns, order_by=positions).text} ON CONFLICT ({names}) DO NOTHING"
    )
    find = text(f"SELECT id, {names} FROM {table} JOIN {unnest(columns[:key])} USING ({names})")  # noqa: S608
    return insert_missing, find


async def _find_or_insert_foreignids(
    conn: AsyncConnection, foreignids: Sequence[str]
) -> dict[str, int]:
    """`vendor:name` → `foreignid` id (vendors and names created as needed)."""
    pairs = [foreignid.partition(":")[::2] for foreignid in foreignids]
    vendors = sorted({vendor for vendor, _ in pairs})
    vendor_ids = await _find_or_insert(
        conn, "foreignid_vendor", [("name", "text")], 1, [{"name": v} for v in vendors]
    )
    rows = [{"vendor_id": vendor_ids[(vendor,)], "name": name} for vendor, name in pairs]
    ids = await _find_or_insert(
        conn, "foreignid", [("vendor_id", "int"), ("name", "text")], 2, rows
    )
    return {
        foreignid: ids[(row["vendor_id"], row["name"])]
        for foreignid, row in zip(foreignids, rows, strict=True)
    }


async def find_or_insert(conn: AsyncConnection, table: Table, values: Mapping[str, Any]) -> int:
    """Id of the row with exactly these values (unique constraint), inserting it if needed."""
    inserted = await conn.scalar(
        insert(table).values(**values).on_conflict_do_nothing().returning(table.c.id)
    )
    if inserted is not None:
        return int(inserted)
    condition = [table.c[key].is_not_distinct_from(value) for key, value in values.items()]
    return int(await conn.scalar(select(table.c.id).where(*condition)))  # type: ignore[arg-type]


_SUBMISSION_COLUMNS: Columns = [
    ("id", "bigint"),
    ("source_id", "int"),
    ("format_id", "int"),
    ("meta_id", "int"),
    ("meta_gid", "uuid"),
    ("foreignid_id", "int"),
]
_MARK_IMPORTED = text(
    "UPDATE submission AS s SET handled = true, handled_at = now(), source_id = v.source_id, "  # noqa: S608
    "format_id = v.format_id, meta_id = v.meta_id, meta_gid = v.meta_gid, "
    f"foreignid_id = v.foreignid_id FROM {unnest(_SUBMISSION_COLUMNS)} WHERE s.id = v.id"
)
_MARK_REJECTED = text(
    "UPDATE submission SET handled = true, handled_at = now() "
    "WHERE id = ANY(CAST(:ids AS bigint[]))"
)
_NOT_PENDING = text("DELETE FROM pending_submission WHERE id = ANY(CAST(:ids AS bigint[]))")
_RESULT_COLUMNS: Columns = [
    ("submission_id", "bigint"),
    ("account_id", "int"),
    ("application_id", "int"),
    ("application_version", "text"),
    ("fingerprint_id", "int"),
    ("track_id", "int"),
    ("track_gid", "uuid"),
    ("meta_id", "int"),
    ("meta_gid", "uuid"),
    ("mbid", "uuid"),
    ("puid", "uuid"),
    ("foreignid", "text"),
]
_INSERT_RESULTS = insert_rows("submission_result", _RESULT_COLUMNS)
_SOURCE_COLUMNS: Columns = [
    ("fingerprint_id", "int"),
    ("submission_id", "bigint"),
    ("source_id", "int"),
]
_INSERT_SOURCES = insert_rows("fingerprint_source", _SOURCE_COLUMNS)


@functools.cache
def _insert_link_sources(table: str, column: str) -> TextClause:
    return insert_rows(table, [(column, "int"), ("submission_id", "bigint"), ("source_id", "int")])


async def finish_submissions(
    conn: AsyncConnection, imported: Sequence[Imported], rejected: Sequence[int]
) -> None:
    """Mark the batch handled and no longer pending; results and provenance of the imported."""
    if rejected:
        await conn.execute(_MARK_REJECTED, {"ids": list(rejected)})
    if imported:
        marks = [
            {
                "id": e.item.id,
                "source_id": e.source_id,
                "format_id": e.format_id,
                "meta_id": e.meta_id,
                "meta_gid": e.meta_gid,
                "foreignid_id": e.foreignid_id,
            }
            for e in imported
        ]
        await conn.execute(_MARK_IMPORTED, arrays(marks, _SUBMISSION_COLUMNS))
        results = [_result(e) for e in imported]
        await conn.execute(_INSERT_RESULTS, arrays(results, _RESULT_COLUMNS))
        sources = [
            {
                "fingerprint_id": e.fingerprint_id,
                "submission_id": e.item.id,
                "source_id": e.source_id,
            }
            for e in imported
        ]
        await conn.execute(_INSERT_SOURCES, arrays(sources, _SOURCE_COLUMNS))
        by_table: defaultdict[tuple[str, str], dict[str, list[Any]]] = defaultdict(
            lambda: {"link_id": [], "submission_id": [], "source_id": []}
        )
        for e in imported:
            for table, column, link_id in e.link_sources:
                bound = by_table[(table.name, column)]
                bound["link_id"].append(link_id)
                bound["submission_id"].append(e.item.id)
                bound["source_id"].append(e.source_id)
        for (table_name, column), bound in by_table.items():
            statement = _insert_link_sources(table_name, column)
            await conn.execute(statement, {column: bound.pop("link_id"), **bound})
    handled = sorted([*rejected, *(e.item.id for e in imported)])
    await conn.execute(_NOT_PENDING, {"ids": handled})


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
