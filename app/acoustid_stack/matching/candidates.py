"""Where candidate fingerprints' hashes come from: the fingerprint database."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from acoustid_stack.db.schema.fingerprint import fingerprint, track
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
    (id and gid, merges followed) in the same query; one pooled connection per call."""

    def __init__(self, *, engine: AsyncEngine) -> None:
        self._engine = engine

    async def load(
        self, ids: Sequence[int], *, min_length: int, max_length: int
    ) -> list[Candidate]:
        if not ids:
            return []
        merged = track.alias("merged")
        statement = (
            select(
                fingerprint.c.id,
                fingerprint.c.length,
                fingerprint.c.fingerprint,
                func.coalesce(merged.c.id, track.c.id).label("track_id"),
                func.coalesce(merged.c.gid, track.c.gid).label("track_gid"),
            )
            .join(track, track.c.id == fingerprint.c.track_id)
            .outerjoin(merged, merged.c.id == track.c.new_id)
            .where(
                fingerprint.c.id.in_(list(ids)),
                fingerprint.c.length.between(min_length, max_length),
            )
        )
        async with self._engine.connect() as connection:
            result = await connection.execute(statement)
            return [
                Candidate(row.id, row.track_id, row.length, _hashes(row.fingerprint), row.track_gid)
                for row in result
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
