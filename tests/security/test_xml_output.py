"""Issue 17 item 8: stored metadata holding characters XML 1.0 forbids (control characters,
U+FFFE) must not make format=xml answers ill-formed for every later client."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest
from starlette.testclient import TestClient

from acoustid_stack.fingerprint import encode_fingerprint
from api_support import Catalog, Keys, random_hashes

pytestmark = [pytest.mark.security, pytest.mark.integration]


def test_forbidden_characters_in_stored_metadata_are_replaced_in_xml(
    client: TestClient, keys: Keys, catalog: Catalog
) -> None:
    hashes = random_hashes(81)
    catalog.add(hashes, 200, meta={"track": "A\x01B\x1bC\ufffe", "artist": "Tab\tok"})
    response = client.post(
        "/v2/lookup",
        data={
            "client": keys.client_key,
            "duration": "200",
            "fingerprint": encode_fingerprint(hashes),
            "meta": "recordings usermeta",
            "format": "xml",
        },
    )
    assert response.status_code == 200
    document = ET.fromstring(response.content)  # raises when not well-formed
    assert document.findtext("results/result/recordings/recording/title") == "A\ufffdB\ufffdC\ufffd"
    assert document.findtext("results/result/recordings/recording/artists/artist/name") == "Tab\tok"
