"""/v2/lookup against real PostgreSQL, Redis and a real index server."""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from acoustid_stack.config import Settings
from acoustid_stack.fingerprint import encode_fingerprint
from api_support import Catalog, Keys, random_hashes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def song(catalog: Catalog) -> dict[str, Any]:
    hashes = random_hashes(1)
    mbid = uuid.uuid4()
    fingerprint_id, gid = catalog.add(
        hashes,
        120,
        mbids=(mbid,),
        meta={"track": "Song", "artist": "Band", "album": "Album"},
    )
    return {
        "fingerprint": encode_fingerprint(hashes),
        "fingerprint_id": fingerprint_id,
        "gid": str(gid),
        "mbid": str(mbid),
    }


def lookup(api: TestClient, /, **params: str) -> Any:
    return api.post("/v2/lookup", data=params)


def test_lookup_finds_the_track_with_its_recording(
    client: TestClient, keys: Keys, song: dict[str, Any]
) -> None:
    response = lookup(
        client,
        client=keys.client_key,
        duration="121",
        fingerprint=song["fingerprint"],
        meta="recordings",
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json; charset=UTF-8"
    assert response.json() == {
        "status": "ok",
        "results": [
            {
                "id": song["gid"],
                "score": 1.0,
                "recordings": [
                    {"id": song["mbid"], "title": "Song", "artists": [{"name": "Band"}]}
                ],
            }
        ],
    }
    assert list(json.loads(response.text)) == ["results", "status"]  # keys sorted


def test_lookup_meta_values_shape_recordings_and_release_groups(
    client: TestClient, keys: Keys, song: dict[str, Any]
) -> None:
    body = lookup(
        client,
        client=keys.client_key,
        duration="120",
        fingerprint=song["fingerprint"],
        meta="recordingids releasegroups sources compress",
    ).json()
    assert body["results"][0]["recordings"] == [
        {
            "id": song["mbid"],
            "sources": 3,
            "releasegroups": [{"title": "Album", "artists": [{"name": "Band"}]}],
        }
    ]
    ids_only = lookup(
        client, client=keys.client_key, duration="120", fingerprint=song["fingerprint"], meta="1"
    ).json()
    assert ids_only["results"][0]["recordings"] == [{"id": song["mbid"]}]
    bare = lookup(client, client=keys.client_key, duration="120", fingerprint=song["fingerprint"])
    assert bare.json()["results"] == [{"id": song["gid"], "score": 1.0}]


def test_lookup_shows_user_meta_when_a_track_has_no_mbid(
    client: TestClient, keys: Keys, catalog: Catalog
) -> None:
    hashes = random_hashes(2)
    _, gid = catalog.add(hashes, 200, meta={"track": "Untitled", "artist": "Someone"})
    body = lookup(
        client,
        client=keys.client_key,
        duration="200",
        fingerprint=encode_fingerprint(hashes),
        meta="recordings usermeta",
    ).json()
    assert body["results"] == [
        {
            "id": str(gid),
            "score": 1.0,
            "recordings": [{"title": "Untitled", "artists": [{"name": "Someone"}]}],
        }
    ]


def test_lookup_in_xml_and_jsonp(client: TestClient, keys: Keys, song: dict[str, Any]) -> None:
    params = {"client": keys.client_key, "duration": "120", "fingerprint": song["fingerprint"]}
    xml = lookup(client, **params, format="xml", meta="recordingids")
    assert xml.headers["content-type"] == "text/xml; charset=UTF-8"
    assert xml.text.startswith('<?xml version="1.0" encoding="UTF-8"?><response>')
    root = ET.fromstring(xml.content)
    assert root.findtext("status") == "ok"
    assert root.findtext("results/result/id") == song["gid"]
    assert root.findtext("results/result/score") == "1.0"
    assert root.findtext("results/result/recordings/recording/id") == song["mbid"]

    jsonp = lookup(client, **params, format="jsonp", jsoncallback="my.cb")
    assert jsonp.headers["content-type"] == "application/javascript; charset=UTF-8"
    assert jsonp.text.startswith("my.cb({")
    assert jsonp.text.endswith("})")
    default = lookup(client, **params, format="jsonp", jsoncallback="alert(1)")
    assert default.text.startswith("jsonAcoustidApi(")


def test_batch_lookup_answers_each_fingerprint_by_index(
    client: TestClient, keys: Keys, song: dict[str, Any]
) -> None:
    unrelated = encode_fingerprint(random_hashes(999))
    body = lookup(
        client,
        client=keys.client_key,
        batch="1",
        **{
            "fingerprint.0": song["fingerprint"],
            "duration.0": "120",
            "fingerprint.1": unrelated,
            "duration.1": "120",
            "trackid.2": song["gid"],
        },
    ).json()
    assert body == {
        "status": "ok",
        "fingerprints": [
            {"index": 0, "results": [{"id": song["gid"], "score": 1.0}]},
            {"index": 1, "results": []},
            {"index": 2, "results": [{"id": song["gid"], "score": 1.0}]},
        ],
    }


def test_lookup_by_track_id_scores_one(
    client: TestClient, keys: Keys, song: dict[str, Any]
) -> None:
    body = lookup(client, client=keys.client_key, trackid=song["gid"]).json()
    assert body["results"] == [{"id": song["gid"], "score": 1.0}]


def test_lookup_outside_the_duration_window_finds_nothing(
    client: TestClient, keys: Keys, song: dict[str, Any]
) -> None:
    params = {"client": keys.client_key, "fingerprint": song["fingerprint"]}
    assert lookup(client, **params, duration="130").json()["results"] == []
    wide = lookup(client, **params, duration="130", maxdurationdiff="10").json()
    assert wide["results"][0]["id"] == song["gid"]


def test_a_failing_batch_query_is_skipped_unless_it_is_the_last_and_none_succeeded(
    client: TestClient, keys: Keys, song: dict[str, Any]
) -> None:
    body = lookup(
        client,
        client=keys.client_key,
        batch="1",
        **{"fingerprint.0": "!!!", "duration.0": "120", "trackid.1": song["gid"]},
    ).json()
    assert [entry["index"] for entry in body["fingerprints"]] == [1]
    failing = lookup(
        client, client=keys.client_key, batch="1", **{"fingerprint.0": "!!!", "duration.0": "9"}
    )
    assert failing.json()["error"]["code"] == 3


ERRORS = [
    ({"format": "yaml"}, 400, 1, 'unknown format "json"'),
    ({"client": None}, 400, 2, 'missing required parameter "client"'),
    ({"client": "wrongkey"}, 400, 4, "invalid API key"),
    ({"fingerprint": None}, 400, 2, 'missing required parameter "fingerprint"'),
    ({"duration": None}, 400, 2, 'missing required parameter "duration"'),
    ({"duration": "0"}, 400, 2, 'missing required parameter "duration"'),
    ({"duration": "-3"}, 400, 8, 'parameter "duration" must be a positive integer'),
    ({"fingerprint": "AQAAA"}, 400, 3, "invalid fingerprint"),
    ({"maxdurationdiff": "31"}, 400, 11, 'parameter "maxdurationdiff" must be between 1 and 30'),
    ({"fingerprint": None, "trackid": "x"}, 400, 7, 'parameter "trackid" is not a valid UUID'),
]


@pytest.mark.parametrize("case", ERRORS, ids=[str(case[0]) for case in ERRORS])
def test_lookup_errors(
    client: TestClient,
    keys: Keys,
    song: dict[str, Any],
    case: tuple[dict[str, str | None], int, int, str],
) -> None:
    params, status, code, message = case
    base: dict[str, str | None] = {
        "client": keys.client_key,
        "duration": "120",
        "fingerprint": song["fingerprint"],
    }
    data = {name: value for name, value in {**base, **params}.items() if value is not None}
    response = client.post("/v2/lookup", data=data)
    assert response.status_code == status
    assert response.json() == {"status": "error", "error": {"code": code, "message": message}}


def test_lookup_errors_come_in_the_requested_format(
    client: TestClient, song: dict[str, Any]
) -> None:
    response = client.post("/v2/lookup", data={"format": "xml", "client": "wrongkey"})
    root = ET.fromstring(response.content)
    assert response.status_code == 400
    assert root.findtext("status") == "error"
    assert root.findtext("error/code") == "4"
    assert root.findtext("error/message") == "invalid API key"


def test_more_than_twenty_fingerprints_is_error_19(
    client: TestClient, keys: Keys, song: dict[str, Any]
) -> None:
    data = {"client": keys.client_key, "batch": "1"}
    for i in range(21):
        data[f"fingerprint.{i}"] = song["fingerprint"]
        data[f"duration.{i}"] = "120"
    response = client.post("/v2/lookup", data=data)
    assert response.status_code == 413
    assert response.json()["error"] == {"code": 19, "message": "request too large"}


def test_mbids_without_metadata_exist_and_disabled_links_are_hidden(
    client: TestClient, keys: Keys, catalog: Catalog, api_settings: Settings
) -> None:
    """Loading the recordings checks existence (`recordings`); MBIDs alone go through the
    hour-long Redis cache of existence (`recordingids`). Both hide disabled links."""
    hashes = random_hashes(4711)
    bare, disabled = uuid.uuid4(), uuid.uuid4()
    catalog.add(hashes, 150, mbids=(bare,), disabled_mbids=(disabled,))
    fingerprint = encode_fingerprint(hashes)

    def recordings(meta: str) -> Any:
        body = lookup(
            client, client=keys.client_key, duration="150", fingerprint=fingerprint, meta=meta
        ).json()
        return body["results"][0]["recordings"]

    assert recordings("recordings") == [{"id": str(bare)}]
    assert recordings("recordingids") == [{"id": str(bare)}]
    cache = redis.Redis(host=api_settings.redis.host, port=api_settings.redis.port)
    try:
        key = f"{api_settings.redis.key_prefix}mbid:{bare}"
        assert cache.get(key) == b"1"
        assert 3500 < cache.ttl(key) <= 3600
        assert cache.get(f"{api_settings.redis.key_prefix}mbid:{disabled}") is None
    finally:
        cache.close()
