"""/v2/track/*, /v2/fingerprint and /v2/user/* on the real databases."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

import psycopg
import pytest
from starlette.testclient import TestClient

from acoustid_stack.config import Settings
from api_support import Catalog, Keys, random_hashes

pytestmark = pytest.mark.integration


def test_list_by_mbid_lists_tracks_and_flags_disabled_links_on_request(
    client: TestClient, catalog: Catalog
) -> None:
    mbid, other = uuid.uuid4(), uuid.uuid4()
    _, enabled_gid = catalog.add(random_hashes(21), 100, mbids=(mbid,))
    _, disabled_gid = catalog.add(random_hashes(22), 100, disabled_mbids=(mbid,))

    single = client.get("/v2/track/list_by_mbid", params={"mbid": str(mbid)}).json()
    assert single == {"status": "ok", "tracks": [{"id": str(enabled_gid)}]}

    with_disabled = client.get(
        "/v2/track/list_by_mbid", params={"mbid": str(mbid), "disabled": "1"}
    ).json()
    expected: list[dict[str, object]] = [
        {"id": str(enabled_gid)},
        {"id": str(disabled_gid), "disabled": True},
    ]
    by_id = lambda track: str(track["id"])  # noqa: E731
    assert sorted(with_disabled["tracks"], key=by_id) == sorted(expected, key=by_id)

    batch = client.get(
        "/v2/track/list_by_mbid", params=[("mbid", str(mbid)), ("mbid", str(other)), ("batch", "1")]
    ).json()
    assert batch["mbids"] == [
        {"mbid": str(mbid), "tracks": [{"id": str(enabled_gid)}]},
        {"mbid": str(other), "tracks": []},
    ]

    xml = client.get("/v2/track/list_by_mbid", params={"mbid": str(mbid), "format": "xml"})
    assert ET.fromstring(xml.content).findtext("tracks/track/id") == str(enabled_gid)


def test_list_by_mbid_requires_valid_mbids(client: TestClient) -> None:
    assert client.get("/v2/track/list_by_mbid").json()["error"]["code"] == 2
    invalid = client.get("/v2/track/list_by_mbid", params={"mbid": "x"}).json()
    assert invalid["error"] == {"code": 7, "message": 'parameter "mbid" is not a valid UUID'}


def test_list_by_puid_answers_no_tracks(client: TestClient) -> None:
    body = client.get("/v2/track/list_by_puid", params={"puid": str(uuid.uuid4())}).json()
    assert body == {"status": "ok", "tracks": []}


def test_fingerprint_returns_the_stored_hashes_or_error_18(
    client: TestClient, catalog: Catalog
) -> None:
    hashes = random_hashes(23, 50)
    fingerprint_id, _ = catalog.add(hashes, 42)
    body = client.get("/v2/fingerprint", params={"id": str(fingerprint_id)}).json()
    assert body == {
        "status": "ok",
        "fingerprint": {
            "id": fingerprint_id,
            "hashes": hashes.view("int32").tolist(),
            "duration": 42,
        },
    }
    missing = client.get("/v2/fingerprint", params={"id": "2000000000"})
    assert missing.status_code == 404
    assert missing.json()["error"] == {"code": 18, "message": "fingerprint not found"}
    assert client.get("/v2/fingerprint").json()["error"]["code"] == 2


def test_user_lookup_returns_the_key_of_a_known_user(client: TestClient, keys: Keys) -> None:
    body = client.post("/v2/user/lookup", data={"user": keys.user_key}).json()
    assert body == {"status": "ok", "user": {"apikey": keys.user_key}}
    unknown = client.post("/v2/user/lookup", data={"user": "nobody"})
    assert unknown.json()["error"]["code"] == 6


def test_create_anonymous_makes_a_working_user_key(
    client: TestClient, keys: Keys, api_settings: Settings
) -> None:
    body = client.post(
        "/v2/user/create_anonymous",
        data={"client": keys.client_key},
        headers={"X-Forwarded-For": "192.0.2.7"},
    ).json()
    apikey = body["user"]["apikey"]
    assert len(apikey) == 10
    with psycopg.connect(api_settings.database.app.conninfo()) as conn:
        row = conn.execute(
            "SELECT name, anonymous, application_id, host(created_from) FROM account "
            "WHERE apikey = %s",
            (apikey,),
        ).fetchone()
    assert row == ("Anonymous", True, keys.application_id, "192.0.2.7")
    again = client.post("/v2/user/lookup", data={"user": apikey}).json()
    assert again["user"]["apikey"] == apikey


def test_create_musicbrainz_refuses_plain_http_with_error_16(client: TestClient) -> None:
    response = client.post("/v2/user/create_musicbrainz", data={"access_token": "token"})
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": 16,
        "message": "only requests over HTTPS are allowed here",
    }


def test_create_musicbrainz_answers_error_15_as_no_token_can_be_verified_here(
    client: TestClient,
) -> None:
    url = "https://testserver/v2/user/create_musicbrainz"
    missing = client.post(url)
    refused = client.post(url, data={"access_token": "token"})
    assert missing.json()["error"]["code"] == 2
    assert refused.status_code == 400
    assert refused.json()["error"] == {"code": 15, "message": "invalid MusicBrainz access token"}
