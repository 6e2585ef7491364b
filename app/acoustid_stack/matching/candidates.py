"""Where candidate fingerprints' hashes come from: the fingerprint database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from acoustid_stack.db.schema.fingerprint import fingerprint
from acoustid_stack.fingerprint.hashes import Int32Array


@dataclass(frozen=True)
class Candidate:
    """A stored fingerprint: its id, track, length in seconds and hashes (int32)."""

    id: int
    track_id: int
    length: int
    hashes: Int32Array


class CandidateStore(Protocol):
    async def load(
        self, ids: Sequence[int], *, min_length: int, max_length: int
    ) -> list[Candidate]:
        """The fingerprints among `ids` whose length lies in [min_length, max_length]."""
        ...


class DatabaseCandidates:
    """Candidates read from the fingerprint database, one pooled connection per call."""

    def __init__(self, *, engine: AsyncEngine) -> None:
        self._engine = engine

    async def load(
        self, ids: Sequence[int], *, min_length: int, max_length: int
    ) -> list[Candidate]:
        if not ids:
            return []
        async with self._engine.connect() as connection:
            return await load_candidates(
                connection, ids, min_length=min_length, max_length=max_length
            )


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
    return [
        Candidate(row.id, row.track_id, row.length, np.asarray(row.fingerprint, dtype=np.int32))
        for row in result
    ]
