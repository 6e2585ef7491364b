"""Where candidate fingerprints' hashes come from: the fingerprint database."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from acoustid_stack.db.reader import Reader
from acoustid_stack.db.schema.fingerprint import fingerprint
from acoustid_stack.fingerprint.hashes import Int32Array


@dataclass(frozen=True)
class Candidate:
    """A stored fingerprint: its id, track, length in seconds and hashes (int32).

    `track_gid` is set by stores that resolve the track for lookups (then `track_id` is the
    track the fingerprint stands for now: a merged track points onward); None otherwise.
    """

    id: int
    track_id: int
    length: int
    hashes: Int32Array
    track_gid: uuid.UUID | None = None


class CandidateStore(Protocol):
    async def load(
        self, ids: Sequence[int], *, min_length: int, max_length: int
    ) -> list[Candidate]:
        """The fingerprints among `ids` whose length lies in [min_length, max_length]."""
        ...


class DatabaseCandidates:
    """Candidates for lookups, read from the fingerprint database with their current track
    (id and gid, merges followed) in the same query."""

    # the current track: a merged track's new_id points at the track that absorbed it
    _QUERY: Final = (
        "SELECT f.id, f.length, f.fingerprint, coalesce(m.id, t.id), coalesce(m.gid, t.gid)"
        " FROM fingerprint f JOIN track t ON t.id = f.track_id"
        " LEFT JOIN track m ON m.id = t.new_id"
        " WHERE f.id = ANY(%s) AND f.length BETWEEN %s AND %s"
    )

    def __init__(self, *, reader: Reader) -> None:
        self._reader = reader

    async def load(
        self, ids: Sequence[int], *, min_length: int, max_length: int
    ) -> list[Candidate]:
        if not ids:
            return []
        rows = await self._reader.fetch(self._QUERY, (list(ids), min_length, max_length))
        return [
            Candidate(fingerprint_id, track_id, length, hashes, track_gid)
            for fingerprint_id, length, hashes, track_id, track_gid in rows
        ]


async def load_candidates(
    connection: AsyncConnection, ids: Sequence[int], *, min_length: int, max_length: int
) -> list[Candidate]:
    """`DatabaseCandidates.load` on a connection the caller holds (e.g. inside its transaction)."""
    statement = select(
        fingerprint.c.id, fingerprint.c.track_id, fingerprint.c.length, fingerprint.c.fingerprint
    ).where(
        fingerprint.c.id.in_(list(ids)),
        fingerprint.c.length.between(min_length, max_length),
    )
    result = await connection.execute(statement)
    return [Candidate(row.id, row.track_id, row.length, _hashes(row.fingerprint)) for row in result]


def _hashes(stored: Sequence[int]) -> Int32Array:
    return np.asarray(stored, dtype=np.int32)
