"""The `meta` parameter of `/v2/lookup` and the metadata it adds to each result (§1.6).

Precedence as upstream: recordings (or recordingids) nest release groups, else releases;
without recordings, release groups or releases attach to the result directly. `tracks` adds
each release's mediums with the recording's track on them. Keys whose value is empty or null
are left out: what the provider does not know is absent, never made up. `compress` drops a
child's artists/title equal to its parent's (a track's title equal to its recording's, its
artists equal to its release's); `usermeta` shows submitted meta as id-less recordings when
no MBID is known.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from acoustid_stack.api.catalog import MbidLink, UserMeta
from acoustid_stack.api.metadata import (
    Artist,
    Medium,
    Recording,
    Release,
    ReleaseEvent,
    ReleaseGroup,
    Track,
    recording_from_meta,
)

META_VALUES: Final = frozenset(
    {
        "recordings",
        "recordingids",
        "releases",
        "releaseids",
        "releasegroups",
        "releasegroupids",
        "tracks",
        "compress",
        "usermeta",
        "sources",
        "isrcs",
    }
)

Json = dict[str, Any]


@dataclass(frozen=True)
class MetaRequest:
    values: frozenset[str]

    @classmethod
    def parse(cls, value: str | None) -> MetaRequest:
        """Space-separated names (`+` in URLs); "0"/empty = none, "1" = recordingids and "2"
        (upstream's legacy set) = recordings with release groups. Unknown names are ignored."""
        words = set((value or "").split())
        if "1" in words:
            words.add("recordingids")
        if "2" in words:
            words |= {"recordings", "releasegroups", "compress"}
        return cls(frozenset(words & META_VALUES))

    @property
    def any(self) -> bool:
        return bool(self.values - {"compress"})

    @property
    def recordings(self) -> bool:
        return bool(self.values & {"recordings", "recordingids", "isrcs"})

    @property
    def full_recordings(self) -> bool:
        return "recordings" in self.values

    @property
    def describes_recordings(self) -> bool:
        """Whether the answer shows more of a recording than its MBID."""
        return self.full_recordings or self.release_groups or self.releases

    @property
    def release_groups(self) -> bool:
        return bool(self.values & {"releasegroups", "releasegroupids"})

    @property
    def releases(self) -> bool:
        return bool(self.values & {"releases", "releaseids"})


def track_metadata(
    request: MetaRequest,
    links: Sequence[MbidLink],
    recordings: Mapping[uuid.UUID, Recording],
    user_meta: Sequence[UserMeta],
) -> Json:
    """The metadata keys of one lookup result (a track)."""
    known = [(link, recordings.get(link.mbid) or Recording(link.mbid)) for link in links]
    if not known and "usermeta" in request.values:
        shown = [(None, recording_from_meta(None, row)) for row in user_meta]
        return _without_empty({"recordings": [_recording(request, r, s) for s, r in shown]})
    if request.recordings:
        return _without_empty(
            {"recordings": [_recording(request, recording, link) for link, recording in known]}
        )
    groups = [group for _, recording in known for group in recording.release_groups]
    if request.release_groups:
        return _without_empty(
            {"releasegroups": _unique(_release_group(request, g, None) for g in groups)}
        )
    if request.releases:
        releases = [release for group in groups for release in group.releases]
        return _without_empty({"releases": _unique(_release(request, r, None) for r in releases)})
    return {}


def _recording(request: MetaRequest, recording: Recording, link: MbidLink | None) -> Json:
    data: Json = {"id": str(recording.id) if recording.id else None}
    if "sources" in request.values and link is not None:
        data["sources"] = link.submission_count
    if request.full_recordings or recording.id is None:
        data["title"] = recording.title
        data["duration"] = recording.duration
        data["artists"] = _artists(recording.artists)
    if request.release_groups:
        data["releasegroups"] = _unique(
            _compressed(request, data, _release_group(request, group, data))
            for group in recording.release_groups
        )
    elif request.releases:
        data["releases"] = _unique(
            _compressed(request, data, _release(request, release, data))
            for group in recording.release_groups
            for release in group.releases
        )
    return _without_empty(data)


def _release_group(request: MetaRequest, group: ReleaseGroup, recording: Json | None) -> Json:
    """`recording`: the recording shown above it (None when attached to the result)."""
    if "releasegroups" not in request.values:
        data: Json = {"id": _id(group.id)}
    else:
        data = {
            "id": _id(group.id),
            "title": group.title,
            "type": group.type,
            "artists": _artists(group.artists),
        }
    if request.releases:
        data["releases"] = _unique(
            _compressed(request, data, _release(request, release, recording))
            for release in group.releases
        )
    return _without_empty(data)


def _release(request: MetaRequest, release: Release, recording: Json | None) -> Json:
    data: Json = {"id": _id(release.id)}
    if "releases" in request.values:
        events = _unique(_release_event(event) for event in release.events)
        data |= {
            "title": release.title,
            "artists": _artists(release.artists),
            "track_count": release.track_count,
            "medium_count": release.medium_count,
            "releaseevents": events,
        }
        data |= events[0] if events else {}  # upstream repeats the first event's country/date
    if "tracks" in request.values:
        data["mediums"] = _unique(
            _medium(request, medium, data, recording) for medium in release.mediums
        )
    return _without_empty(data)


def _release_event(event: ReleaseEvent) -> Json:
    date = _without_empty({"year": event.year, "month": event.month, "day": event.day})
    return _without_empty({"country": event.country, "date": date})


def _medium(request: MetaRequest, medium: Medium, release: Json, recording: Json | None) -> Json:
    return _without_empty(
        {
            "position": medium.position,
            "track_count": medium.track_count,
            "format": medium.format,
            "title": medium.title,
            "tracks": _unique(_track(request, t, release, recording) for t in medium.tracks),
        }
    )


def _track(request: MetaRequest, track: Track, release: Json, recording: Json | None) -> Json:
    data: Json = {
        "id": _id(track.id),
        "position": track.position,
        "title": track.title,
        "artists": _artists(track.artists),
    }
    if "compress" in request.values:
        if recording is not None and data["title"] == recording.get("title"):
            del data["title"]
        if data["artists"] == release.get("artists"):
            del data["artists"]
    return _without_empty(data)


def _artists(artists: Iterable[Artist]) -> list[Json]:
    return [
        _without_empty({"id": _id(artist.id), "name": artist.name, "joinphrase": artist.joinphrase})
        for artist in artists
    ]


def _compressed(request: MetaRequest, parent: Json, child: Json) -> Json:
    if "compress" not in request.values:
        return child
    return {
        key: value
        for key, value in child.items()
        if key not in ("artists", "title") or value != parent.get(key)
    }


def _unique(items: Iterable[Json]) -> list[Json]:
    """Non-empty items, first occurrence only (many recordings share a release group)."""
    result: list[Json] = []
    for item in items:
        if item and item not in result:
            result.append(item)
    return result


def _id(value: uuid.UUID | None) -> str | None:
    return str(value) if value else None


def _without_empty(data: Json) -> Json:
    return {key: value for key, value in data.items() if value not in (None, "", [], {})}
