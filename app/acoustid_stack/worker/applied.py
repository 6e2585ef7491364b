"""The fingerprint database's record of imported submissions (`import_applied`).

The fingerprint and ingest transactions of a batch commit one after the other; a worker
dying between the two leaves the fingerprint side applied and the submission still
pending. `record_applied` writes one row per imported submission in the fingerprint
transaction, so the row exists exactly when that side committed. A retry reads it
(`load_applied`, under the claimed ingest row, so no other import of the submission can be
in flight) and rebuilds what the import became (`recover`) to redo only the ingest side:
no second `submission_count`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Row, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from acoustid_stack.db.schema import fingerprint as fp_db
from acoustid_stack.db.schema import ingest as ingest_db
from acoustid_stack.worker.bulk import Columns, arrays, insert_rows
from acoustid_stack.worker.submission import Importable
from acoustid_stack.worker.writer import Imported, Origin

# `Imported.link_sources` column (the marker's column too) -> its ingest provenance table.
_LINK_SOURCES: dict[str, Table] = {
    "track_mbid_id": ingest_db.track_mbid_source,
    "track_puid_id": ingest_db.track_puid_source,
    "track_meta_id": ingest_db.track_meta_source,
    "track_foreignid_id": ingest_db.track_foreignid_source,
}


async def load_applied(conn: AsyncConnection, ids: Sequence[int]) -> dict[int, Row[Any]]:
    """The `import_applied` rows of these submission ids, by id."""
    a = fp_db.import_applied
    if not ids:
        return {}
    rows = await conn.execute(select(a).where(a.c.submission_id.in_(sorted(ids))))
    return {row.submission_id: row for row in rows}


_MARKER_COLUMNS: Columns = [
    ("submission_id", "bigint"),
    ("fingerprint_id", "int"),
    ("track_id", "int"),
    ("meta_id", "int"),
    ("foreignid_id", "int"),
    *((column, "int") for column in _LINK_SOURCES),
]
_RECORD_APPLIED = insert_rows("import_applied", _MARKER_COLUMNS)


async def record_applied(conn: AsyncConnection, imported: Sequence[Imported]) -> None:
    """Mark these submissions applied, in the fingerprint transaction that wrote them."""
    if not imported:
        return
    rows = []
    for e in imported:
        row: dict[str, Any] = dict.fromkeys(_LINK_SOURCES)
        row |= {column: link_id for _, column, link_id in e.link_sources}
        rows.append(
            row
            | {
                "submission_id": e.item.id,
                "fingerprint_id": e.fingerprint_id,
                "track_id": e.track_id,
                "meta_id": e.meta_id,
                "foreignid_id": e.foreignid_id,
            }
        )
    await conn.execute(_RECORD_APPLIED, arrays(rows, _MARKER_COLUMNS))


async def recover(
    conn: AsyncConnection,
    batch: Sequence[Importable],
    origins: Sequence[Origin],
    applied: Mapping[int, Row[Any]],
) -> list[Imported]:
    """What these already applied submissions became, from their marker rows (`batch` and
    `origins` aligned, every id in `applied`); the track and meta gids are read back."""
    if not batch:
        return []
    t, m = fp_db.track, fp_db.meta
    markers = [applied[item.id] for item in batch]
    track_ids = sorted({row.track_id for row in markers})
    meta_ids = sorted({row.meta_id for row in markers if row.meta_id is not None})
    found = await conn.execute(select(t.c.id, t.c.gid).where(t.c.id.in_(track_ids)))
    track_gids = {row.id: row.gid for row in found}
    meta_gids: dict[int, Any] = {}
    if meta_ids:
        meta_gids = {
            row.id: row.gid
            for row in await conn.execute(select(m.c.id, m.c.gid).where(m.c.id.in_(meta_ids)))
        }
    return [
        Imported(
            item=item,
            source_id=origin.source_id,
            format_id=origin.format_id,
            fingerprint_id=marker.fingerprint_id,
            track_id=marker.track_id,
            track_gid=track_gids[marker.track_id],
            meta_id=marker.meta_id,
            meta_gid=meta_gids.get(marker.meta_id) if marker.meta_id is not None else None,
            foreignid_id=marker.foreignid_id,
            link_sources=[
                (table, column, marker._mapping[column])
                for column, table in _LINK_SOURCES.items()
                if marker._mapping[column] is not None
            ],
        )
        for item, origin, marker in zip(batch, origins, markers, strict=True)
    ]
