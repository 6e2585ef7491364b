"""What the api reads from the fingerprint database: tracks, their links and fingerprints."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from acoustid_stack.db.schema.fingerprint import fingerprint, meta, track, track_mbid, track_meta

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
    track: str | None
    artist: str | None
    album: str | None
    album_artist: str | None


@dataclass(frozen=True)
class StoredFingerprint:
    id: int
    hashes: list[int]
    length: int


class Catalog:
    def __init__(self, *, fingerprint_db: AsyncEngine) -> None:
        self._db = fingerprint_db

    async def track_gids(self, track_ids: Collection[int]) -> dict[int, TrackRef]:
        """track id → (id, gid) of the track it stands for now (merged tracks point onward)."""
        if not track_ids:
            return {}
        merged = track.alias("merged")
        statement = (
            select(
                track.c.id,
                func.coalesce(merged.c.id, track.c.id).label("current_id"),
                func.coalesce(merged.c.gid, track.c.gid).label("current_gid"),
            )
            .outerjoin(merged, merged.c.id == track.c.new_id)
            .where(track.c.id.in_(list(track_ids)))
        )
        async with self._db.connect() as connection:
            rows = (await connection.execute(statement)).all()
        return {row.id: (row.current_id, row.current_gid) for row in rows}

    async def tracks_by_gid(self, gids: Collection[uuid.UUID]) -> dict[uuid.UUID, TrackRef]:
        """gid → (id, gid) of the track it stands for now; unknown gids are left out."""
        if not gids:
            return {}
        statement = select(track.c.gid, track.c.id).where(track.c.gid.in_(list(gids)))
        async with self._db.connect() as connection:
            found = {row.gid: row.id for row in await connection.execute(statement)}
        current = await self.track_gids(found.values())
        return {gid: current[track_id] for gid, track_id in found.items() if track_id in current}

    async def mbids(
        self, track_ids: Collection[int], *, include_disabled: bool = False
    ) -> dict[int, list[MbidLink]]:
        """track id → its MBID links ordered by MBID."""
        if not track_ids:
            return {}
        statement = (
            select(
                track_mbid.c.track_id,
                track_mbid.c.mbid,
                track_mbid.c.submission_count,
                track_mbid.c.disabled,
            )
            .where(track_mbid.c.track_id.in_(list(track_ids)))
            .order_by(track_mbid.c.track_id, track_mbid.c.mbid)
        )
        if not include_disabled:
            statement = statement.where(track_mbid.c.disabled.is_(False))
        result: dict[int, list[MbidLink]] = defaultdict(list)
        async with self._db.connect() as connection:
            for row in await connection.execute(statement):
                result[row.track_id].append(MbidLink(row.mbid, row.submission_count, row.disabled))
        return result

    async def user_meta(self, track_ids: Collection[int]) -> dict[int, list[UserMeta]]:
        """track id → up to 10 submitted meta rows, most submitted first."""
        if not track_ids:
            return {}
        ranked = (
            select(
                track_meta.c.track_id,
                meta.c.track,
                meta.c.artist,
                meta.c.album,
                meta.c.album_artist,
                func.row_number()
                .over(
                    partition_by=track_meta.c.track_id,
                    order_by=(track_meta.c.submission_count.desc(), meta.c.id),
                )
                .label("rank"),
            )
            .join(meta, meta.c.id == track_meta.c.meta_id)
            .where(track_meta.c.track_id.in_(list(track_ids)))
            .subquery()
        )
        statement = (
            select(ranked)
            .where(ranked.c.rank <= MAX_USER_META_PER_TRACK)
            .order_by(ranked.c.track_id, ranked.c.rank)
        )
        result: dict[int, list[UserMeta]] = defaultdict(list)
        async with self._db.connect() as connection:
            for row in await connection.execute(statement):
                result[row.track_id].append(
                    UserMeta(row.track, row.artist, row.album, row.album_artist)
                )
        return result

    async def tracks_by_mbid(
        self, mbids: Collection[uuid.UUID], *, include_disabled: bool
    ) -> dict[uuid.UUID, list[tuple[uuid.UUID, bool]]]:
        """MBID → [(track gid, link disabled)] ordered by gid."""
        if not mbids:
            return {}
        statement = (
            select(track_mbid.c.mbid, track.c.gid, track_mbid.c.disabled)
            .join(track, track.c.id == track_mbid.c.track_id)
            .where(track_mbid.c.mbid.in_(list(mbids)))
            .order_by(track_mbid.c.mbid, track.c.gid)
        )
        if not include_disabled:
            statement = statement.where(track_mbid.c.disabled.is_(False))
        result: dict[uuid.UUID, list[tuple[uuid.UUID, bool]]] = defaultdict(list)
        async with self._db.connect() as connection:
            for row in await connection.execute(statement):
                result[row.mbid].append((row.gid, row.disabled))
        return result

    async def fingerprint(self, fingerprint_id: int) -> StoredFingerprint | None:
        statement = select(fingerprint.c.id, fingerprint.c.fingerprint, fingerprint.c.length).where(
            fingerprint.c.id == fingerprint_id
        )
        async with self._db.connect() as connection:
            row = (await connection.execute(statement)).first()
        return StoredFingerprint(row.id, list(row.fingerprint), row.length) if row else None
