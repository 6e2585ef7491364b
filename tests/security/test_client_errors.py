"""Issue 17 item 7: malformed input that used to raise inside a handler (a 500, logged and
sent to Sentry) is a client error; a client that goes away mid-body is not an error at all."""

from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient
from starlette.types import Message

from acoustid_stack.fingerprint import encode_fingerprint
from api_support import Keys, random_hashes

pytestmark = [pytest.mark.security, pytest.mark.integration]

UUID = "4e0d8649-1f89-44f3-91af-4c0dbee81f28"


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/v2/track/list_by_mbid", "mbid"),
        ("/v2/track/list_by_puid", "puid"),
        ("/v2/lookup", "trackid"),
        ("/v2/submit", "mbid"),
    ],
)
def test_a_uuid_followed_by_a_newline_is_error_7(
    client: TestClient, keys: Keys, path: str, name: str
) -> None:
    fingerprint = encode_fingerprint(random_hashes(17, 120))
    response = client.post(
        path,
        data={
            "client": keys.client_key,
            "user": keys.user_key,
            "fingerprint": fingerprint,
            "duration": "120",
            name: UUID + "\n",
        },
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 7


@pytest.mark.parametrize("path", ["/v2/lookup", "/v2/submit"])
def test_a_huge_batch_suffix_is_a_client_error(client: TestClient, keys: Keys, path: str) -> None:
    fingerprint = encode_fingerprint(random_hashes(18, 120))
    suffix = "9" * 4400
    response = client.post(
        path,
        data={
            "client": keys.client_key,
            "user": keys.user_key,
            f"fingerprint.{suffix}": fingerprint,
            f"duration.{suffix}": "120",
        },
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 2  # not a batch index: no fingerprint given


def test_a_client_that_hangs_up_mid_body_is_not_an_error(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v2/lookup",
        "raw_path": b"/v2/lookup",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", b"100000"),
        ],
        "client": ("192.0.2.1", 1234),
        "server": ("testserver", 80),
    }
    incoming: list[Message] = [
        {"type": "http.request", "body": b"fingerprint=AQAA", "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    assert client.portal is not None
    with caplog.at_level(logging.ERROR):
        client.portal.call(client.app, scope, receive, send)
    assert sent[0]["status"] != 500
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    metrics = client.get("/metrics").text
    assert "api_unhandled_errors_total 0.0" in metrics
