"""/v2/lookup against real PostgreSQL, Redis and a real index server."""

from __future__ import annotations

import uuid

import pytest
from starlette.testclient import TestClient

from acoustid_stack.fingerprint import encode_fingerprint

from .conftest import Catalog, Keys, random_hashes

pytestmark = pytest.mark.integration


def test_lookup_finds_the_track_of_an_indexed_fingerprint(
    client: TestClient, keys: Keys, catalog: Catalog
) -> None:
    hashes = random_hashes(1)
    mbid = uuid.uuid4()
    _, gid = catalog.add(hashes, 120, mbids=(mbid,), meta={"track": "Song", "artist": "Band"})
    response = client.post(
        "/v2/lookup",
        data={
            "client": keys.client_key,
            "duration": "121",
            "fingerprint": encode_fingerprint(hashes),
            "meta": "recordings",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["results"][0]["id"] == str(gid)
    assert body["results"][0]["score"] == pytest.approx(1.0)
    assert body["results"][0]["recordings"] == [
        {"id": str(mbid), "title": "Song", "artists": [{"name": "Band"}]}
    ]
