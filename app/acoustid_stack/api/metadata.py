"""Recording metadata for lookups, behind a Protocol so a MusicBrainz mirror can replace it.

MusicBrainz is not available here, so `SubmittedMetadata` describes a recording with what
submissions told us: the MBID, and title/artist/album (with disc and track number and year)
from user meta submitted for a track linked to that MBID (the most submitted one). The shape
is MusicBrainz's (release group → release → medium → track) so that a mirror fills it whole;
what submissions do not say (MBIDs of releases, track counts, medium formats) stays None.
`CachedExistence` remembers for an hour which MBIDs exist, as upstream does for its mirror
checks; lookups ask `existing` only when they show MBIDs alone (`recordingids` …): when they
show metadata, loading the recordings answers existence, and `SubmittedMetadata` reads the
tracks' MBID links with them: one query.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from acoustid_stack.api.catalog import USER_META_COLUMNS, MbidLink, UserMeta
from acoustid_stack.db.reader import Reader

MBID_CACHE_SECONDS: Final = 3600

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Artist:
    name: str
    id: uuid.UUID | None = None
    joinphrase: str | None = None


@dataclass(frozen=True)
class Track:
    """The recording on one medium of a release."""

    position: int | None = None
    title: str | None = None
    artists: tuple[Artist, ...] = ()
    id: uuid.UUID | None = None


@dataclass(frozen=True)
class Medium:
    position: int | None = None
    tracks: tuple[Track, ...] = ()
    track_count: int | None = None
    format: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class ReleaseEvent:
    country: str | None = None
    year: int | None = None
    month: int | None = None
    day: int | None = None


@dataclass(frozen=True)
class Release:
    title: str | None
    id: uuid.UUID | None = None
    artists: tuple[Artist, ...] = ()
    track_count: int | None = None
    medium_count: int | None = None
    events: tuple[ReleaseEvent, ...] = ()
    mediums: tuple[Medium, ...] = ()


@dataclass(frozen=True)
class ReleaseGroup:
    title: str | None
    id: uuid.UUID | None = None
    type: str | None = None
    artists: tuple[Artist, ...] = ()
    releases: tuple[Release, ...] = ()


@dataclass(frozen=True)
class Recording:
    """What lookups may say about a recording; `id` None for user-submitted meta (`usermeta`)."""

    id: uuid.UUID | None
    title: str | None = None
    artists: tuple[Artist, ...] = ()
    duration: float | None = None
    release_groups: tuple[ReleaseGroup, ...] = field(default=())


#: track id → its MBID links (ordered by MBID); MBID → the recording, for those that exist
LinkedRecordings = tuple[dict[int, list[MbidLink]], dict[uuid.UUID, Recording]]


class MetadataProvider(Protocol):
    async def linked_recordings(self, track_ids: Collection[int]) -> LinkedRecordings:
        """The enabled MBID links of each track (as `Catalog.mbids`) and the recordings among
        their MBIDs that exist, with what is known of them (at least the id); MBIDs that
        name no recording are left out, so no `existing` call is needed."""
        ...

    async def existing(self, mbids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        """The MBIDs among `mbids` that name a recording."""
        ...


class SubmittedMetadata:
    """Recordings described by submitted user meta, from the fingerprint database."""

    def __init__(self, *, fingerprint_reader: Reader) -> None:
        self._reader = fingerprint_reader

    async def linked_recordings(self, track_ids: Collection[int]) -> LinkedRecordings:
        links: dict[int, list[MbidLink]] = defaultdict(list)
        recordings: dict[uuid.UUID, Recording] = {}
        if not track_ids:
            return links, recordings
        # links and recordings in one round trip: per link, the meta submitted most often
        # for a track linked to its MBID (the link itself is enabled: every MBID exists)
        rows = await self._reader.fetch(
            "SELECT l.track_id, l.mbid, l.submission_count, l.disabled, r.*"  # noqa: S608
            " FROM track_mbid l LEFT JOIN LATERAL ("
            f"  SELECT {USER_META_COLUMNS} FROM track_mbid tm"  # a constant
            "  LEFT JOIN track_meta tt ON tt.track_id = tm.track_id"
            "  LEFT JOIN meta m ON m.id = tt.meta_id"
            "  WHERE tm.mbid = l.mbid AND NOT tm.disabled"
            "  ORDER BY tt.submission_count DESC NULLS LAST, m.id LIMIT 1"
            " ) r ON true"
            " WHERE l.track_id = ANY(%s) AND NOT l.disabled ORDER BY l.track_id, l.mbid",
            (list(track_ids),),
        )
        for track_id, mbid, submission_count, disabled, *values in rows:
            links[track_id].append(MbidLink(mbid, submission_count, disabled))
            if mbid not in recordings:
                recordings[mbid] = recording_from_meta(mbid, UserMeta(*values))
        return links, recordings

    async def existing(self, mbids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        if not mbids:
            return set()
        rows = await self._reader.fetch(
            "SELECT DISTINCT mbid FROM track_mbid WHERE mbid = ANY(%s) AND NOT disabled",
            (list(mbids),),
        )
        return {mbid for (mbid,) in rows}


def recording_from_meta(mbid: uuid.UUID | None, meta: UserMeta) -> Recording:
    """A recording built from one row of user meta, as upstream reads it: the album is a
    release group with one release, whose medium `disc_no` holds the recording as track
    `track_no`; `year` is the release's date. Without an album there is no release."""
    artists = (Artist(meta.artist),) if meta.artist else ()
    groups: tuple[ReleaseGroup, ...] = ()
    if meta.album:
        album_artists = (Artist(meta.album_artist),) if meta.album_artist else artists
        track = Track(position=meta.track_no, title=meta.track, artists=artists)
        release = Release(
            meta.album,
            artists=album_artists,
            events=(ReleaseEvent(year=meta.year),) if meta.year else (),
            mediums=(Medium(position=meta.disc_no, tracks=(track,)),),
        )
        groups = (ReleaseGroup(meta.album, artists=album_artists, releases=(release,)),)
    return Recording(mbid, meta.track, artists, release_groups=groups)


class CachedExistence:
    """A MetadataProvider whose `existing` answers are cached in Redis for an hour.

    Failure policy: a Redis error means "not cached"; the provider is asked directly.
    """

    def __init__(self, *, provider: MetadataProvider, redis: Redis, key_prefix: str = "") -> None:
        self._provider = provider
        self._redis = redis
        self._prefix = f"{key_prefix}mbid:"

    async def linked_recordings(self, track_ids: Collection[int]) -> LinkedRecordings:
        return await self._provider.linked_recordings(track_ids)

    async def existing(self, mbids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        ordered: Sequence[uuid.UUID] = sorted(set(mbids))
        if not ordered:
            return set()
        keys = [f"{self._prefix}{mbid}" for mbid in ordered]
        try:
            cached = await self._redis.mget(keys)
        except RedisError as exc:
            logger.warning("MBID cache unavailable: %s", exc)
            return await self._provider.existing(ordered)
        found = {mbid for mbid, value in zip(ordered, cached, strict=True) if value == b"1"}
        unknown = [mbid for mbid, value in zip(ordered, cached, strict=True) if value is None]
        if unknown:
            fresh = await self._provider.existing(unknown)
            found |= fresh
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for mbid in unknown:
                        pipe.set(
                            f"{self._prefix}{mbid}",
                            b"1" if mbid in fresh else b"0",
                            ex=MBID_CACHE_SECONDS,
                        )
                    await pipe.execute()
            except RedisError as exc:
                logger.warning("MBID cache not updated: %s", exc)
        return found
