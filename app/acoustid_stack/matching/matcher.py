"""The search itself: index candidates, then exact scores (reference §3.3, slow path)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import ArrayLike

from acoustid_stack.fingerprint import extract_query, score_candidates
from acoustid_stack.fingerprint.hashes import Int32Array, as_int32
from acoustid_stack.index.interfaces import FingerprintIndex, SearchHit, SearchOptions
from acoustid_stack.matching.candidates import CandidateStore

#: Upstream's TRACK_MAX_OFFSET: alignments further apart than this many hashes do not count.
MAX_OFFSET: Final = 80
#: Candidates scored per query (upstream's slow path keeps ≤ 20).
MAX_CANDIDATES: Final = 20
#: Candidates must share more than this fraction of the best candidate's index hits.
MIN_HITS_SHARE: Final = 0.1
#: Upstream's FINGERPRINT_MAX_LENGTH_DIFF, also the API's default `maxdurationdiff`.
MAX_LENGTH_DIFF: Final = 7


@dataclass(frozen=True)
class FingerprintMatch:
    """A stored fingerprint scored against the query (`score` as `acoustid_compare2`);
    `track_gid` as the candidate store gave it (see `Candidate`)."""

    fingerprint_id: int
    track_id: int
    score: float
    track_gid: uuid.UUID | None = None


class Matcher:
    """Finds stored fingerprints similar to a query; raises the index's FpindexError when the
    index cannot answer (callers decide: the api says "unavailable", the worker retries)."""

    def __init__(
        self,
        *,
        index: FingerprintIndex,
        candidates: CandidateStore,
        search_timeout: float = 1.0,
        max_candidates: int = MAX_CANDIDATES,
        max_offset: int = MAX_OFFSET,
    ) -> None:
        self._index = index
        self._candidates = candidates
        self._search = SearchOptions(limit=max_candidates, timeout=search_timeout)
        self._max_candidates = max_candidates
        self._max_offset = max_offset

    async def find(
        self,
        hashes: ArrayLike,
        length: int,
        *,
        min_score: float,
        max_length_diff: int = MAX_LENGTH_DIFF,
        limit: int | None = None,
    ) -> list[FingerprintMatch]:
        """Matches scoring strictly above `min_score` whose length is within `max_length_diff`
        seconds of `length`, best first (ties by id), at most `limit` of them."""
        [matches] = await self.find_many(
            [(hashes, length)], min_score=min_score, max_length_diff=max_length_diff, limit=limit
        )
        return matches

    async def find_many(
        self,
        queries: Sequence[tuple[ArrayLike, int]],
        *,
        min_score: float,
        max_length_diff: int = MAX_LENGTH_DIFF,
        limit: int | None = None,
    ) -> list[list[FingerprintMatch]]:
        """`find` for every (hashes, length), in order. Several queries share one index
        request per shard (`search_many`); a single one is a plain search, which every
        fpindex server speaks."""
        prepared = [(as_int32(hashes), length) for hashes, length in queries]
        terms = [extract_query(query).view(np.uint32).tolist() for query, _ in prepared]
        searchable = [i for i, query_terms in enumerate(terms) if query_terms]
        if len(searchable) == 1:
            found = [await self._index.search(terms[searchable[0]], self._search)]
        elif searchable:
            found = await self._index.search_many([terms[i] for i in searchable], self._search)
        else:
            found = []
        hits = dict(zip(searchable, found, strict=True))
        ranked = await asyncio.gather(
            *(
                self._rank(
                    query,
                    hits.get(i, []),
                    min_length=length - max_length_diff,
                    max_length=length + max_length_diff,
                    min_score=min_score,
                )
                for i, (query, length) in enumerate(prepared)
            )
        )
        return [matches if limit is None else matches[:limit] for matches in ranked]

    async def _rank(
        self,
        query: Int32Array,
        hits: Sequence[SearchHit],
        *,
        min_length: int,
        max_length: int,
        min_score: float,
    ) -> list[FingerprintMatch]:
        """The index's hits scored exactly against `query`, best first (ties by id)."""
        if not hits:
            return []
        best = max(hit.score for hit in hits)
        ranked = sorted(hits, key=lambda hit: (-hit.score, hit.id))
        ids = [hit.id for hit in ranked if hit.score > best * MIN_HITS_SHARE]
        candidates = await self._candidates.load(
            ids[: self._max_candidates], min_length=min_length, max_length=max_length
        )
        if not candidates:
            return []
        scores = score_candidates(
            query, [candidate.hashes for candidate in candidates], max_offset=self._max_offset
        )
        matches = [
            FingerprintMatch(candidate.id, candidate.track_id, float(score), candidate.track_gid)
            for candidate, score in zip(candidates, scores, strict=True)
            if score > min_score
        ]
        matches.sort(key=lambda match: (-match.score, match.fingerprint_id))
        return matches
