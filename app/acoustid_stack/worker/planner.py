"""Where each submission of a batch goes: which track, and a new or a reused fingerprint.

The decision is upstream's (reference §4.2 step 4), taken for the whole batch at once:
the submissions' index searches go in one request per shard (`search_many`), the
candidates' hashes come from one query, and the tracks' fingerprints from one more.
Submissions are then placed one by one in id order, in memory, exactly as if each had been
imported after the previous one committed: a fingerprint the batch creates is a candidate for
every later submission of the batch (found through the same terms the index would have found
it by) and a member of its track for the "every fingerprint fits" rule. So the same song
twice in one batch ends up on one track, and a near-identical copy reuses the new
fingerprint.

Every shard must answer the searches (`require_all`): a placement decided without one of
them raises ShardUnavailableError and nothing is planned.

The caller holds the import locks (`locks.take_batch_locks`) and runs the queries inside its
fingerprint-database transaction, so no concurrent import can slip between search and write.

Ids: existing rows have their positive database ids; rows the batch will create are
numbered -1, -2, … until `writer` allocates their real ids.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from acoustid_stack.db.int4_arrays import binary_column, from_binary
from acoustid_stack.db.schema import fingerprint as fp_db
from acoustid_stack.fingerprint import score_candidates
from acoustid_stack.fingerprint.hashes import Int32Array
from acoustid_stack.index.interfaces import FingerprintIndex, SearchHit, SearchOptions
from acoustid_stack.matching.matcher import MAX_CANDIDATES, MIN_HITS_SHARE
from acoustid_stack.worker.submission import Importable

# Upstream constants (reference §3.3).
TRACK_MERGE_THRESHOLD = 0.75
TRACK_GROUP_MERGE_THRESHOLD = 0.4
TRACK_MAX_OFFSET = 80
FINGERPRINT_MERGE_THRESHOLD = 0.9
FINGERPRINT_MAX_LENGTH_DIFF = 7
# The index's own default minimum hits (ceil(terms / 20)), applied to in-batch hits alike.
MIN_HITS_DIVISOR = 20


@dataclass(frozen=True)
class Placement:
    """Where one submission goes: `track_id` and `fingerprint_id` (negative: created by the
    batch); `new_fingerprint` when this submission creates that fingerprint."""

    track_id: int
    fingerprint_id: int
    new_fingerprint: bool


@dataclass(frozen=True)
class NewFingerprint:
    """A fingerprint the batch creates from submission `source` (an index into the batch)."""

    ref: int
    source: int
    track_id: int


@dataclass
class BatchPlan:
    placements: list[Placement]
    new_tracks: list[int] = field(default_factory=list)
    new_fingerprints: list[NewFingerprint] = field(default_factory=list)
    # fingerprint id (existing or new) -> submissions that reuse it
    reuses: Counter[int] = field(default_factory=Counter)


@dataclass(frozen=True)
class _Stored:
    id: int  # negative: created by the batch
    track_id: int
    length: int
    hashes: Int32Array


class BatchPlanner:
    """Plans a batch against the index and the fingerprint database (see module docstring)."""

    def __init__(self, *, index: FingerprintIndex, search_timeout: float = 1.0) -> None:
        self._index = index
        self._search = SearchOptions(limit=MAX_CANDIDATES, timeout=search_timeout)

    async def plan(self, conn: AsyncConnection, batch: Sequence[Importable]) -> BatchPlan:
        """Placements aligned with `batch`, which must be in the order to import in."""
        # a shard left out would hide the match it holds and the song would get a second
        # fingerprint and track: the batch waits for every shard instead (the caller retries)
        searches = await self._index.search_many(
            [item.terms.view(np.uint32).tolist() for item in batch],
            self._search,
            require_all=True,
        )
        hits = [_candidates(found) for found in searches]
        stored = await _load_fingerprints(conn, {i for found in hits for i in found})
        db_matches = [
            _score(item, [(i, stored[i]) for i in found if i in stored])
            for item, found in zip(batch, hits, strict=True)
        ]
        members = await _load_tracks(conn, {m.track_id for ms in db_matches for m in ms})
        return _Placer(batch, hits, members).place(db_matches)


@dataclass(frozen=True)
class _Match:
    fingerprint_id: int
    track_id: int
    score: float


class _Placer:
    """The one-by-one placement in memory, with the batch's own new fingerprints."""

    def __init__(
        self,
        batch: Sequence[Importable],
        hits: list[dict[int, int]],
        members: dict[int, list[_Stored]],
    ) -> None:
        self._batch = batch
        self._hits = hits
        self._members = members
        self._plan = BatchPlan(placements=[])
        # Two submissions of the batch can only hit each other through terms both have, so
        # only those are indexed and counted (distinct songs share none: no Python loop).
        self._shared = _shared_terms(batch)
        # shared term -> new fingerprints indexed under it: the batch's own index
        self._terms: defaultdict[int, list[int]] = defaultdict(list)
        self._created: dict[int, _Stored] = {}

    def place(self, db_matches: list[list[_Match]]) -> BatchPlan:
        for position, item in enumerate(self._batch):
            matches = self._with_batch_matches(position, item, db_matches[position])
            track_id, reuse = self._choose_track(item, matches)
            if track_id is None:
                track_id = -(len(self._plan.new_tracks) + 1)
                self._plan.new_tracks.append(track_id)
            if reuse is not None:
                self._plan.reuses[reuse] += 1
                self._plan.placements.append(Placement(track_id, reuse, new_fingerprint=False))
                continue
            ref = -(len(self._plan.new_fingerprints) + 1)
            self._plan.new_fingerprints.append(NewFingerprint(ref, position, track_id))
            self._plan.placements.append(Placement(track_id, ref, new_fingerprint=True))
            created = _Stored(ref, track_id, item.length, item.hashes)
            self._created[ref] = created
            self._members.setdefault(track_id, []).append(created)
            for term in self._shared[position]:
                self._terms[term].append(ref)
        return self._plan

    def _with_batch_matches(
        self, position: int, item: Importable, db_matches: list[_Match]
    ) -> list[_Match]:
        """`db_matches` plus the batch's new fingerprints the index would have returned,
        ranked together with the index's hits as one search would have ranked them."""
        counts: Counter[int] = Counter()
        for term in self._shared[position]:
            counts.update(self._terms.get(term, ()))
        min_hits = max(1, math.ceil(item.terms.size / MIN_HITS_DIVISOR))
        batch_hits = {ref: n for ref, n in counts.items() if n >= min_hits}
        if not batch_hits:
            return db_matches
        chosen = set(_candidates_from({**self._hits[position], **batch_hits}))
        matches = [m for m in db_matches if m.fingerprint_id in chosen]
        created = [(ref, self._created[ref]) for ref in batch_hits if ref in chosen]
        return matches + _score(item, created)

    def _choose_track(
        self, item: Importable, matches: list[_Match]
    ) -> tuple[int | None, int | None]:
        """(track to join, fingerprint to reuse): the best matched track whose every
        fingerprint fits (score ≥ 0.4, length within 7 s); its match is reused when it
        scored > 0.9."""
        best_per_track: dict[int, _Match] = {}
        for match in sorted(matches, key=lambda m: (-m.score, _id_order(m.fingerprint_id))):
            best_per_track.setdefault(match.track_id, match)
        matched = {m.fingerprint_id for m in matches}
        for track_id, match in best_per_track.items():
            if _fits(item, self._members.get(track_id, []), matched):
                reuse = match.fingerprint_id if match.score > FINGERPRINT_MERGE_THRESHOLD else None
                return track_id, reuse
        return None, None


def _shared_terms(batch: Sequence[Importable]) -> list[list[int]]:
    """Per submission, its terms that another submission of the batch has too."""
    if len(batch) < 2:
        return [[] for _ in batch]
    # a submission's terms are distinct, so a term counted twice belongs to two submissions
    every = np.concatenate([item.terms for item in batch])
    values, counts = np.unique(every, return_counts=True)
    shared = np.isin(every, values[counts > 1])
    bounds = np.cumsum([item.terms.size for item in batch])[:-1]
    return [
        terms[mask].tolist()
        for terms, mask in zip(np.split(every, bounds), np.split(shared, bounds), strict=True)
    ]


def _id_order(fingerprint_id: int) -> tuple[int, int]:
    """Sort key of ids: new rows get ids above every stored one, in creation order."""
    return (1, -fingerprint_id) if fingerprint_id < 0 else (0, fingerprint_id)


def _candidates(hits: Sequence[SearchHit]) -> dict[int, int]:
    return _candidates_from({hit.id: hit.score for hit in hits})


def _candidates_from(hits: dict[int, int]) -> dict[int, int]:
    """The ids worth scoring, as `Matcher.find` picks them: more than a tenth of the best
    hit count, the best `MAX_CANDIDATES`; id -> hits, best first."""
    if not hits:
        return {}
    best = max(hits.values())
    ranked = sorted(hits.items(), key=lambda entry: (-entry[1], _id_order(entry[0])))
    kept = [(i, n) for i, n in ranked if n > best * MIN_HITS_SHARE]
    return dict(kept[:MAX_CANDIDATES])


def _score(item: Importable, candidates: Sequence[tuple[int, _Stored]]) -> list[_Match]:
    """Candidates within the length window scoring above the track merge threshold."""
    near = [
        (i, c) for i, c in candidates if abs(c.length - item.length) <= FINGERPRINT_MAX_LENGTH_DIFF
    ]
    if not near:
        return []
    scores = score_candidates(item.hashes, [c.hashes for _, c in near], max_offset=TRACK_MAX_OFFSET)
    return [
        _Match(i, c.track_id, float(score))
        for (i, c), score in zip(near, scores, strict=True)
        if score > TRACK_MERGE_THRESHOLD
    ]


def _fits(item: Importable, members: Sequence[_Stored], matched: set[int]) -> bool:
    """Every member within the length window and scoring ≥ 0.4 against `item`; `matched`
    members already scored above the track merge threshold, so only the others are scored
    (a track's single fingerprint is usually the match itself)."""
    if any(abs(m.length - item.length) > FINGERPRINT_MAX_LENGTH_DIFF for m in members):
        return False
    others = [m.hashes for m in members if m.id not in matched]
    if not others:
        return True
    scores = score_candidates(item.hashes, others, max_offset=TRACK_MAX_OFFSET)
    return bool(np.all(scores >= TRACK_GROUP_MERGE_THRESHOLD))


async def _load_fingerprints(conn: AsyncConnection, ids: set[int]) -> dict[int, _Stored]:
    if not ids:
        return {}
    f = fp_db.fingerprint
    result = await conn.execute(
        select(f.c.id, f.c.track_id, f.c.length, binary_column(f.c.fingerprint)).where(
            f.c.id.in_(sorted(ids))
        )
    )
    return {
        row.id: _Stored(row.id, row.track_id, row.length, from_binary(row.fingerprint_bytes))
        for row in result
    }


async def _load_tracks(conn: AsyncConnection, track_ids: set[int]) -> dict[int, list[_Stored]]:
    """Every fingerprint of these tracks, by track."""
    members: dict[int, list[_Stored]] = {track_id: [] for track_id in track_ids}
    if not track_ids:
        return members
    f = fp_db.fingerprint
    result = await conn.execute(
        select(f.c.id, f.c.track_id, f.c.length, binary_column(f.c.fingerprint)).where(
            f.c.track_id.in_(sorted(track_ids))
        )
    )
    for row in result:
        members[row.track_id].append(
            _Stored(row.id, row.track_id, row.length, from_binary(row.fingerprint_bytes))
        )
    return members
