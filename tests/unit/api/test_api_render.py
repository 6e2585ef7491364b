"""Rendering in upstream's three formats, and parameter parsing, without any server."""

from __future__ import annotations

import datetime
import uuid

import pytest

from acoustid_stack.api.auth import ApiKeys, demo_api_key, new_api_key
from acoustid_stack.api.catalog import MbidLink, UserMeta
from acoustid_stack.api.errors import ApiError, ErrorCode, too_many_requests
from acoustid_stack.api.lookup_meta import MetaRequest, track_metadata
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
from acoustid_stack.api.params import Params
from acoustid_stack.api.render import OutputFormat, singular, to_xml


def test_xml_sorts_keys_singularises_list_items_and_maps_at_keys_to_attributes() -> None:
    body = {"status": "ok", "releases": [{"id": "r"}], "entries": [1, 2], "@version": 2}
    assert to_xml(body) == (
        b'<?xml version="1.0" encoding="UTF-8"?><response version="2">'
        b"<entries><entry>1</entry><entry>2</entry></entries>"
        b"<releases><release><id>r</id></release></releases><status>ok</status></response>"
    )


@pytest.mark.parametrize(
    ("plural", "one"),
    [("recordings", "recording"), ("releasegroups", "releasegroup"), ("entries", "entry")],
)
def test_singular_follows_upstream(plural: str, one: str) -> None:
    assert singular(plural) == one


def test_an_unsafe_jsonp_callback_falls_back_to_the_default() -> None:
    assert OutputFormat.parse("jsonp", "a.b_1").callback == "a.b_1"
    assert OutputFormat.parse("jsonp", "x;alert(1)").callback == "jsonAcoustidApi"


def test_an_unknown_format_is_error_1_naming_json_as_upstream_does() -> None:
    with pytest.raises(ApiError) as raised:
        OutputFormat.parse("yaml", None)
    assert (raised.value.code, raised.value.message) == (1, 'unknown format "json"')


def test_error_statuses_and_rate_message() -> None:
    error = too_many_requests(4)
    assert error.http_status == 429
    assert error.message == "rate limit (4.000000 requests per second) exceeded, try again later"
    assert ApiError(ErrorCode.REQUEST_TOO_LARGE, "").http_status == 413
    assert ApiError(ErrorCode.INVALID_UUID, "").http_status == 400


def test_suffixes_put_the_unsuffixed_query_first_then_sort_numerically() -> None:
    params = Params(
        [("fingerprint.10", "x"), ("duration.2", "1"), ("fingerprint", "y"), ("fingerprint.x", "")]
    )
    assert params.suffixes("fingerprint", "duration") == [None, 2, 10]


def test_meta_shortcuts_expand_as_upstream() -> None:
    assert MetaRequest.parse("1").values == {"recordingids"}
    assert MetaRequest.parse("recordings+bogus".replace("+", " ")).values == {"recordings"}
    assert not MetaRequest.parse("0").any


def test_compress_drops_child_fields_equal_to_the_parent() -> None:
    mbid = uuid.uuid4()
    recording = recording_from_meta(mbid, UserMeta("Title", "Band", "Album", None))
    link = MbidLink(mbid, 2, False)
    full = track_metadata(MetaRequest.parse("recordings releases"), [link], {mbid: recording}, [])
    compressed = track_metadata(
        MetaRequest.parse("recordings releases compress"), [link], {mbid: recording}, []
    )
    assert full["recordings"][0]["releases"] == [{"title": "Album", "artists": [{"name": "Band"}]}]
    assert compressed["recordings"][0]["releases"] == [{"title": "Album"}]


def test_release_groups_attach_to_the_result_without_recordings() -> None:
    mbid = uuid.uuid4()
    recording = recording_from_meta(mbid, UserMeta("Title", "Band", "Album", "Various"))
    shaped = track_metadata(
        MetaRequest.parse("releasegroups"), [MbidLink(mbid, 1, False)], {mbid: recording}, []
    )
    assert shaped == {"releasegroups": [{"title": "Album", "artists": [{"name": "Various"}]}]}


def test_tracks_show_all_a_provider_knows_in_the_upstream_shape() -> None:
    """What a MusicBrainz mirror would fill: ids, counts, formats, release events."""
    ids = [uuid.uuid4() for _ in range(5)]
    band = Artist("Band", id=ids[4])
    release = Release(
        "Album",
        id=ids[1],
        artists=(band,),
        track_count=24,
        medium_count=2,
        events=(ReleaseEvent("GB", 1999, 3, 1), ReleaseEvent("US", 1999)),
        mediums=(
            Medium(
                position=2,
                track_count=12,
                format="CD",
                title="Live",
                tracks=(Track(position=3, title="Song (live)", artists=(band,), id=ids[2]),),
            ),
        ),
    )
    recording = Recording(
        ids[0], "Song", (band,), 181.5, (ReleaseGroup("Album", id=ids[3], releases=(release,)),)
    )
    link = MbidLink(ids[0], 1, False)
    shaped = track_metadata(
        MetaRequest.parse("releases tracks compress"), [link], {ids[0]: recording}, []
    )
    gb = {"country": "GB", "date": {"year": 1999, "month": 3, "day": 1}}
    assert shaped == {
        "releases": [
            {
                "id": str(ids[1]),
                "title": "Album",
                "artists": [{"id": str(ids[4]), "name": "Band"}],
                "track_count": 24,
                "medium_count": 2,
                "releaseevents": [gb, {"country": "US", "date": {"year": 1999}}],
                **gb,
                "mediums": [
                    {
                        "position": 2,
                        "track_count": 12,
                        "format": "CD",
                        "title": "Live",
                        # compress: the track's artists are the release's
                        "tracks": [{"id": str(ids[2]), "position": 3, "title": "Song (live)"}],
                    }
                ],
            }
        ]
    }
    ids_only = track_metadata(
        MetaRequest.parse("releaseids tracks"), [link], {ids[0]: recording}, []
    )
    assert ids_only["releases"][0]["id"] == str(ids[1])
    assert "title" not in ids_only["releases"][0]
    assert ids_only["releases"][0]["mediums"][0]["tracks"][0]["artists"] == [
        {"id": str(ids[4]), "name": "Band"}
    ]


def test_demo_keys_are_eleven_characters_with_a_forced_a() -> None:
    key = demo_api_key("secret", datetime.date(2024, 1, 1))
    assert len(key) == 11
    assert key[-2] == "A"
    assert key != demo_api_key("secret", datetime.date(2024, 1, 2))


def test_demo_keys_of_the_coming_week_are_accepted() -> None:
    today = datetime.date(2024, 1, 1)
    keys = ApiKeys(app_db=None, website_secret="s", today=lambda: today)  # type: ignore[arg-type]
    assert keys._is_demo_key(demo_api_key("s", today + datetime.timedelta(6)))
    assert not keys._is_demo_key(demo_api_key("s", today + datetime.timedelta(7)))
    assert not keys._is_demo_key(demo_api_key("other", today))


def test_new_api_keys_are_ten_letters_or_digits() -> None:
    key = new_api_key()
    assert len(key) == 10
    assert key.isalnum()
