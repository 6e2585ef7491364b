"""Issue 17 item 4: a fingerprint longer than MAX_FINGERPRINT_HASHES (2 hours of audio) is
error 3 on lookup and submit, not seconds of event-loop work and a multi-megabyte row."""

from __future__ import annotations

import numpy as np
import pytest
from starlette.testclient import TestClient

from acoustid_stack.api.fingerprint_param import MAX_FINGERPRINT_HASHES
from acoustid_stack.fingerprint import encode_fingerprint
from api_support import Keys

pytestmark = [pytest.mark.security, pytest.mark.integration]


def _fingerprint(size: int) -> str:
    # few changed bits per hash, as real audio gives: the longest fit well inside 1 MiB
    rng = np.random.default_rng(size)
    changes = np.uint32(1) << rng.integers(0, 32, size, dtype=np.uint32)
    return encode_fingerprint(np.bitwise_xor.accumulate(changes))


@pytest.mark.parametrize("path", ["/v2/lookup", "/v2/submit"])
def test_a_fingerprint_over_the_limit_is_error_3(client: TestClient, keys: Keys, path: str) -> None:
    data = {
        "client": keys.client_key,
        "user": keys.user_key,
        "duration": "7300",
        "mbid": "4e0d8649-1f89-44f3-91af-4c0dbee81f28",
        "fingerprint": _fingerprint(MAX_FINGERPRINT_HASHES + 1),
    }
    response = client.post(path, data=data)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 3


def test_a_fingerprint_at_the_limit_is_looked_up(client: TestClient, keys: Keys) -> None:
    data = {
        "client": keys.client_key,
        "duration": "7300",
        "fingerprint": _fingerprint(MAX_FINGERPRINT_HASHES),
    }
    response = client.post("/v2/lookup", data=data)
    assert response.status_code == 200, response.text
    assert response.json()["results"] == []
