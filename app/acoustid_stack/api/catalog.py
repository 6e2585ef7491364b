"""What the api reads from the fingerprint database: tracks, their links and fingerprints."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass

from acoustid_stack.db.reader import Reader

#: Upstream shows at most this many user meta rows per track (`usermeta`).
MAX_USER_META_PER_TRACK = 10


#: (id, gid) of a track
TrackRef = tuple[int, uuid.UUID]


@dataclass(frozen=True)
class MbidLink:
    mbid: uuid.UUID
    submission_count: int
    disabled: bool


@dataclass(frozen=True)
class UserMeta:
    """One row of submitted user meta (`meta` table), in the order of `USER_META_COLUMNS`."""

    track: str | None
    artist: str | None
    album: str | None
    album_artist: str | None
    track_no: int | None = None
    disc_no: int | None = None
    year: int | None = None


#: the `meta m` columns of a UserMeta, for every query that reads one
USER_META_COLUMNS = "m.track, m.artist, m.album, m.album_artist, m.track_no, m.disc_no, m.year"


@dataclass(frozen=True)
class StoredFingerprint:
    id: int
    hashes: list[int]
    length: int


class Catalog:
    """Reads of the fingerprint database (or its replica) for lookups and track listings."""

    def __init__(self, *, reader: Reader) -> None:
        self._reader = reader

    async def track_gids(self, track_ids: Collection[int]) -> dict[int, TrackRef]:
        """track id → (id, gid) of the track it stands for now (merged tracks point onward)."""
        if not track_ids:
            return {}
        rows = await self._reader.fetch(
            f"SELECT t.id, {_CURRENT_TRACK} WHERE t.id = ANY(%s)", (list(track_ids),)
        )
        return {track_id: (current_id, current_gid) for track_id, current_id, current_gid in rows}

    async def tracks_by_gid(self, gids: Collection[uuid.UUID]) -> dict[uuid.UUID, TrackRef]:
        """gid → (id, gid) of the track it stands for now; unknown gids are left out."""
        if not gids:
            return {}
        rows = await self._reader.fetch(
            f"SELECT t.gid, {_CURRENT_TRACK} WHERE t.gid = ANY(%s)", (list(gids),)
        )
        return {gid: (current_id, current_gid) for gid, current_id, current_gid in rows}

    async def mbids(
        self, track_ids: Collection[int], *, include_disabled: bool = False
    ) -> dict[int, list[MbidLink]]:
        """track id → its MBID links ordered by MBID."""
        if not track_ids:
            return {}
        rows = await self._reader.fetch(
            "SELECT track_id, mbid, submission_count, disabled FROM track_mbid"
            " WHERE track_id = ANY(%s) AND (NOT disabled OR %s) ORDER BY track_id, mbid",
            (list(track_ids), include_disabled),
        )
        result: dict[int, list[MbidLink]] = defaultdict(list)
        for track_id, mbid, submission_count, disabled in rows:
            result[track_id].append(MbidLink(mbid, submission_count, disabled))
        return result

    async def user_meta(self, track_ids: Collection[int]) -> dict[int, list[UserMeta]]:
        """track id → up to 10 submitted meta rows, most submitted first."""
        if not track_ids:
            return {}
        rows = await self._reader.fetch(
            f"SELECT * FROM (SELECT tm.track_id, {USER_META_COLUMNS}, row_number() OVER"  # noqa: S608
            "  (PARTITION BY tm.track_id ORDER BY tm.submission_count DESC, m.id) AS rank"
            " FROM track_meta tm JOIN meta m ON m.id = tm.meta_id WHERE tm.track_id = ANY(%s)"
            ") ranked WHERE rank <= %s ORDER BY track_id, rank",
            (list(track_ids), MAX_USER_META_PER_TRACK),
        )
        result: dict[int, list[UserMeta]] = defaultdict(list)
        for track_id, *values, _rank in rows:
            result[track_id].append(UserMeta(*values))
        return result

    async def tracks_by_mbid(
        self, mbids: Collection[uuid.UUID], *, include_disabled: bool
    ) -> dict[uuid.UUID, list[tuple[uuid.UUID, bool]]]:
        """MBID → [(track gid, link disabled)] ordered by gid."""
        if not mbids:
            return {}
        rows = await self._reader.fetch(
            "SELECT tm.mbid, t.gid, tm.disabled FROM track_mbid tm"
            " JOIN track t ON t.id = tm.track_id"
            " WHERE tm.mbid = ANY(%s) AND (NOT tm.disabled OR %s) ORDER BY tm.mbid, t.gid",
            (list(mbids), include_disabled),
        )
        result: dict[uuid.UUID, list[tuple[uuid.UUID, bool]]] = defaultdict(list)
        for mbid, gid, disabled in rows:
            result[mbid].append((gid, disabled))
        return result

    async def fingerprint(self, fingerprint_id: int) -> StoredFingerprint | None:
        rows = await self._reader.fetch(
            "SELECT id, fingerprint, length FROM fingerprint WHERE id = %s", (fingerprint_id,)
        )
        return StoredFingerprint(rows[0][0], rows[0][1].tolist(), rows[0][2]) if rows else None


#: (id, gid) of the track `t` stands for now: a merged track's new_id points at the track
#: that absorbed it
_CURRENT_TRACK = (
    "coalesce(m.id, t.id), coalesce(m.gid, t.gid) FROM track t LEFT JOIN track m ON m.id = t.new_id"
)
