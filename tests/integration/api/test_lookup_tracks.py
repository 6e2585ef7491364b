"""`meta=tracks` of /v2/lookup: releases → mediums → tracks as upstream shapes them, from what
a submission told us (album, disc and track number, year), imported by the real importer."""

from __future__ import annotations

import asyncio
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from starlette.testclient import TestClient

from acoustid_stack.config import Settings
from acoustid_stack.fingerprint import encode_fingerprint
from acoustid_stack.index.client import ShardedIndexClient
from acoustid_stack.submissions.databases import open_databases
from acoustid_stack.worker.importer import ImportOutcome, SubmissionImporter
from api_support import Keys, random_hashes

pytestmark = pytest.mark.integration

FULL_META = {
    "track": "Song",
    "artist": "Band",
    "album": "Album",
    "albumartist": "Various",
    "trackno": "5",
    "discno": "2",
    "year": "2001",
}


def submit_and_import(
    client: TestClient, keys: Keys, settings: Settings, seed: int, **fields: str
) -> str:
    """Submit one fingerprint through /v2/submit, import it; the fingerprint (base64)."""
    fingerprint = encode_fingerprint(random_hashes(seed))
    response = client.post(
        "/v2/submit",
        data={
            "client": keys.client_key,
            "user": keys.user_key,
            "duration": "180",
            "fingerprint": fingerprint,
            **fields,
        },
    )
    assert response.status_code == 200, response.text
    [submission] = response.json()["submissions"]
    assert asyncio.run(_import(settings, submission["id"])) is ImportOutcome.IMPORTED
    return fingerprint


async def _import(settings: Settings, submission_id: int) -> ImportOutcome:
    databases = open_databases(settings.database, pool_size=2)
    index = ShardedIndexClient.from_settings(settings)
    try:
        importer = SubmissionImporter(databases=databases, index=index)
        return await importer.import_submission(submission_id)
    finally:
        await index.close()
        await databases.dispose()


def lookup(client: TestClient, keys: Keys, fingerprint: str, meta: str, **extra: str) -> Any:
    response = client.post(
        "/v2/lookup",
        data={
            "client": keys.client_key,
            "duration": "180",
            "fingerprint": fingerprint,
            "meta": meta,
            **extra,
        },
    )
    assert response.status_code == 200, response.text
    return response


@pytest.fixture(scope="module")
def full(client: TestClient, keys: Keys, api_settings: Settings) -> dict[str, str]:
    """A track submitted with an MBID and every user meta field."""
    mbid = str(uuid.uuid4())
    fingerprint = submit_and_import(client, keys, api_settings, 301, mbid=mbid, **FULL_META)
    return {"fingerprint": fingerprint, "mbid": mbid}


def only_result(response: Any) -> dict[str, Any]:
    [result] = response.json()["results"]
    assert result["score"] == 1.0
    return result  # type: ignore[no-any-return]


def test_tracks_nest_mediums_and_the_track_in_each_release_of_a_recording(
    client: TestClient, keys: Keys, full: dict[str, str]
) -> None:
    result = only_result(lookup(client, keys, full["fingerprint"], "recordings releases tracks"))
    assert result["recordings"] == [
        {
            "id": full["mbid"],
            "title": "Song",
            "artists": [{"name": "Band"}],
            "releases": [
                {
                    "title": "Album",
                    "artists": [{"name": "Various"}],
                    "releaseevents": [{"date": {"year": 2001}}],
                    "date": {"year": 2001},
                    "mediums": [
                        {
                            "position": 2,
                            "tracks": [
                                {"position": 5, "title": "Song", "artists": [{"name": "Band"}]}
                            ],
                        }
                    ],
                }
            ],
        }
    ]


def test_compress_drops_a_track_title_equal_to_the_recording_and_artists_equal_to_the_release(
    client: TestClient, keys: Keys, full: dict[str, str]
) -> None:
    result = only_result(
        lookup(
            client, keys, full["fingerprint"], "recordings releasegroups releases tracks compress"
        )
    )
    [recording] = result["recordings"]
    assert recording["releasegroups"] == [
        {
            "title": "Album",
            "artists": [{"name": "Various"}],
            "releases": [
                {
                    "releaseevents": [{"date": {"year": 2001}}],
                    "date": {"year": 2001},
                    "mediums": [
                        {"position": 2, "tracks": [{"position": 5, "artists": [{"name": "Band"}]}]}
                    ],
                }
            ],
        }
    ]


def test_without_recordings_the_releases_with_their_tracks_attach_to_the_result(
    client: TestClient, keys: Keys, full: dict[str, str]
) -> None:
    result = only_result(lookup(client, keys, full["fingerprint"], "releases tracks compress"))
    assert "recordings" not in result
    assert result["releases"][0]["mediums"] == [
        {"position": 2, "tracks": [{"position": 5, "title": "Song", "artists": [{"name": "Band"}]}]}
    ]
    # tracks alone name no release to hang on: nothing is added
    bare = only_result(lookup(client, keys, full["fingerprint"], "tracks"))
    assert set(bare) == {"id", "score"}


def test_tracks_in_xml_are_singular_elements_under_their_lists(
    client: TestClient, keys: Keys, full: dict[str, str]
) -> None:
    response = lookup(client, keys, full["fingerprint"], "recordings releases tracks", format="xml")
    release = ET.fromstring(response.content).find(
        "results/result/recordings/recording/releases/release"
    )
    assert release is not None
    assert release.findtext("title") == "Album"
    assert release.findtext("date/year") == "2001"
    assert release.findtext("releaseevents/releaseevent/date/year") == "2001"
    assert release.findtext("mediums/medium/position") == "2"
    track = release.find("mediums/medium/tracks/track")
    assert track is not None
    assert [(child.tag, child.text) for child in track if child.tag != "artists"] == [
        ("position", "5"),
        ("title", "Song"),
    ]
    assert track.findtext("artists/artist/name") == "Band"


def test_what_a_submission_did_not_say_is_left_out_not_made_up(
    client: TestClient, keys: Keys, api_settings: Settings
) -> None:
    mbid = str(uuid.uuid4())
    fingerprint = submit_and_import(
        client, keys, api_settings, 302, mbid=mbid, track="Other", artist="Solo", album="Demo"
    )
    result = only_result(lookup(client, keys, fingerprint, "recordings releases tracks"))
    assert result["recordings"] == [
        {
            "id": mbid,
            "title": "Other",
            "artists": [{"name": "Solo"}],
            "releases": [
                {
                    "title": "Demo",
                    "artists": [{"name": "Solo"}],
                    "mediums": [{"tracks": [{"title": "Other", "artists": [{"name": "Solo"}]}]}],
                }
            ],
        }
    ]
    no_album = submit_and_import(
        client, keys, api_settings, 303, mbid=str(uuid.uuid4()), track="Loose", trackno="3"
    )
    [recording] = only_result(lookup(client, keys, no_album, "recordings releases tracks"))[
        "recordings"
    ]
    assert "releases" not in recording  # a track number without an album names no release


def test_usermeta_shows_the_tracks_of_a_track_without_mbid(
    client: TestClient, keys: Keys, api_settings: Settings
) -> None:
    fingerprint = submit_and_import(client, keys, api_settings, 304, **FULL_META)
    result = only_result(lookup(client, keys, fingerprint, "recordings releases tracks usermeta"))
    [recording] = result["recordings"]
    assert "id" not in recording
    assert recording["releases"][0]["mediums"] == [
        {"position": 2, "tracks": [{"position": 5, "title": "Song", "artists": [{"name": "Band"}]}]}
    ]
