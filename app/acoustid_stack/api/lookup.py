"""`/v2/lookup`: fingerprints (or AcoustIDs) → tracks with scores and metadata (§1.6)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

from acoustid_stack.api import errors
from acoustid_stack.api.auth import ApiKeys
from acoustid_stack.api.catalog import Catalog
from acoustid_stack.api.endpoint import Client
from acoustid_stack.api.errors import ApiError
from acoustid_stack.api.fingerprint_param import decode_fingerprint_param
from acoustid_stack.api.lookup_meta import MetaRequest, track_metadata
from acoustid_stack.api.metadata import MetadataProvider, Recording
from acoustid_stack.api.metrics import ApiMetrics
from acoustid_stack.api.params import Params, parse_int, parse_uuid, suffixed
from acoustid_stack.api.stats import LookupStats
from acoustid_stack.fingerprint.hashes import Int32Array
from acoustid_stack.index.interfaces import FpindexError
from acoustid_stack.matching import FingerprintMatch, Matcher

MAX_FINGERPRINT_QUERIES: Final = 20
MAX_TRACKID_QUERIES: Final = 100
MAX_RESULTS: Final = 10
MIN_SCORE: Final = 0.4
DEFAULT_MAX_DURATION_DIFF: Final = 7
MAX_DURATION_DIFF_RANGE: Final = range(1, 31)


@dataclass(frozen=True)
class FingerprintQuery:
    index: int | None
    hashes: Int32Array
    duration: int


@dataclass(frozen=True)
class TrackQuery:
    index: int | None
    track_gid: uuid.UUID


Query = FingerprintQuery | TrackQuery


@dataclass(frozen=True)
class LookupCall:
    application_id: int
    client: Client
    queries: list[Query]
    batch: bool
    meta: MetaRequest
    max_duration_diff: int


class LookupHandler:
    def __init__(
        self,
        *,
        keys: ApiKeys,
        matcher: Matcher,
        catalog: Catalog,
        metadata: MetadataProvider,
        stats: LookupStats,
        metrics: ApiMetrics,
        return_metadata: bool,
    ) -> None:
        self._keys = keys
        self._matcher = matcher
        self._catalog = catalog
        self._metadata = metadata
        self._stats = stats
        self._metrics = metrics
        self._return_metadata = return_metadata

    async def parse(self, params: Params, client: Client) -> LookupCall:
        application_id = await self._keys.application_id(params)
        max_duration_diff = _max_duration_diff(params)
        meta = MetaRequest.parse(params.get("meta") if self._return_metadata else None)
        batch = params.flag("batch")
        return LookupCall(
            application_id,
            client,
            await _queries(params, batch=batch),
            batch,
            meta,
            max_duration_diff,
        )

    async def run(self, call: LookupCall) -> Mapping[str, Any]:
        per_query = await self._search(call)
        searches = [
            matches
            for query, matches in zip(call.queries, per_query, strict=True)
            if isinstance(query, FingerprintQuery)
        ]
        hits = sum(1 for matches in searches if matches)
        self._metrics.lookup_searches.inc(len(searches))
        self._metrics.lookup_matches.inc(hits)
        self._stats.record(
            application_id=call.application_id,
            hit=any(found for found in per_query),
            user_agent=call.client.user_agent,
            ip=call.client.ip,
        )
        results = await self._with_metadata(call.meta, per_query)
        if not call.batch:
            return {"results": results[0]}
        return {
            "fingerprints": [
                {"index": query.index, "results": query_results}
                for query, query_results in zip(call.queries, results, strict=True)
            ]
        }

    async def _search(self, call: LookupCall) -> list[dict[int, tuple[uuid.UUID, float]]]:
        """track id → (gid, best score), for each query in order. The fingerprints of a batch
        are searched together (one index request per shard), its AcoustIDs in one query."""
        fingerprints = [query for query in call.queries if isinstance(query, FingerprintQuery)]
        try:
            found = iter(
                await self._matcher.find_many(
                    [(query.hashes, query.duration) for query in fingerprints],
                    min_score=MIN_SCORE,
                    max_length_diff=call.max_duration_diff,
                    limit=MAX_RESULTS,
                )
            )
        except FpindexError as exc:
            raise errors.service_unavailable() from exc
        tracks = await self._catalog.tracks_by_gid(
            [query.track_gid for query in call.queries if isinstance(query, TrackQuery)]
        )
        per_query: list[dict[int, tuple[uuid.UUID, float]]] = []
        for query in call.queries:
            if isinstance(query, FingerprintQuery):
                per_query.append(await self._best_tracks(next(found)))
            elif (track := tracks.get(query.track_gid)) is not None:
                track_id, gid = track
                per_query.append({track_id: (gid, 1.0)})
            else:
                per_query.append({})
        return per_query

    async def _best_tracks(
        self, matches: list[FingerprintMatch]
    ) -> dict[int, tuple[uuid.UUID, float]]:
        # stores that resolve tracks already did (DatabaseCandidates); others are asked here
        unresolved = {match.track_id for match in matches if match.track_gid is None}
        tracks = await self._catalog.track_gids(unresolved)
        best: dict[int, tuple[uuid.UUID, float]] = {}
        for match in matches:  # best first, so the first match of a track is its best
            if match.track_gid is not None:
                best.setdefault(match.track_id, (match.track_gid, match.score))
                continue
            current = tracks.get(match.track_id)  # None: the track was deleted meanwhile
            if current is not None:
                best.setdefault(current[0], (current[1], match.score))
        return best

    async def _with_metadata(
        self, meta: MetaRequest, per_query: list[dict[int, tuple[uuid.UUID, float]]]
    ) -> list[list[dict[str, Any]]]:
        track_ids = {track_id for found in per_query for track_id in found}
        metadata: dict[int, dict[str, Any]] = {}
        if meta.any and track_ids:
            metadata = await self._track_metadata(meta, track_ids)
        return [
            [
                {"id": str(gid), "score": score, **metadata.get(track_id, {})}
                for track_id, (gid, score) in sorted(
                    found.items(), key=lambda item: (-item[1][1], str(item[1][0]))
                )
            ]
            for found in per_query
        ]

    async def _track_metadata(
        self, meta: MetaRequest, track_ids: set[int]
    ) -> dict[int, dict[str, Any]]:
        recordings: Mapping[uuid.UUID, Recording] = {}
        if meta.describes_recordings:
            # a provider gives only recordings that exist: loading them checks existence too
            links, recordings = await self._metadata.linked_recordings(track_ids)
            existing: Collection[uuid.UUID] = recordings.keys()
        else:
            links = await self._catalog.mbids(track_ids)
            mbids = {link.mbid for track_links in links.values() for link in track_links}
            existing = await self._metadata.existing(mbids)
        user_meta = await self._catalog.user_meta(track_ids) if "usermeta" in meta.values else {}
        return {
            track_id: track_metadata(
                meta,
                [link for link in links.get(track_id, []) if link.mbid in existing],
                recordings,
                user_meta.get(track_id, []),
            )
            for track_id in track_ids
        }


def _max_duration_diff(params: Params) -> int:
    raw = params.get("maxdurationdiff")
    if not raw:
        return DEFAULT_MAX_DURATION_DIFF
    value = parse_int(raw)
    if value is None or value not in MAX_DURATION_DIFF_RANGE:
        raise errors.invalid_max_duration_diff("maxdurationdiff")
    return value


async def _queries(params: Params, *, batch: bool) -> list[Query]:
    """The queries to run, by suffix. Without `batch` only the first one. A query that fails
    to parse is skipped, unless it is the last one and none succeeded (upstream's rule)."""
    indexes = params.suffixes("fingerprint", "duration", "trackid")
    fingerprints = sum(1 for i in indexes if params.get(suffixed("fingerprint", i)))
    trackids = sum(1 for i in indexes if params.get(suffixed("trackid", i)))
    if fingerprints > MAX_FINGERPRINT_QUERIES or trackids > MAX_TRACKID_QUERIES:
        raise errors.request_too_large()
    if not indexes:
        raise errors.missing_parameter("fingerprint")
    if not batch:
        indexes = indexes[:1]
    queries: list[Query] = []
    for position, index in enumerate(indexes):
        try:
            queries.append(await _query(params, index))
        except ApiError:
            if position == len(indexes) - 1 and not queries:
                raise
    return queries


async def _query(params: Params, index: int | None) -> Query:
    trackid_name = suffixed("trackid", index)
    trackid = params.get(trackid_name)
    if trackid:
        return TrackQuery(index, parse_uuid(trackid_name, trackid))
    fingerprint = params.required(suffixed("fingerprint", index))
    duration_name = suffixed("duration", index)
    raw_duration = params.get(duration_name)
    duration = parse_int(raw_duration)
    if not raw_duration or duration == 0:
        raise errors.missing_parameter(duration_name)
    if duration is None or duration < 0:
        raise errors.invalid_duration(duration_name)
    return FingerprintQuery(index, await decode_fingerprint_param(fingerprint), duration)
