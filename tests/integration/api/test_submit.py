"""/v2/submit and /v2/submission_status: rows in the real ingest DB, ids in the real stream."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import secrets
import uuid
from typing import Any
from urllib.parse import urlencode

import nats
import psycopg
import pytest
from starlette.testclient import TestClient

from acoustid_stack.config import Settings
from acoustid_stack.db import text_limits
from acoustid_stack.fingerprint import encode_fingerprint
from acoustid_stack.fingerprint.hashes import as_int32
from acoustid_stack.local.process import free_port
from api_support import Keys, random_hashes

from .conftest import make_client

pytestmark = pytest.mark.integration

FINGERPRINT = encode_fingerprint(random_hashes(7, 300))


def submission_rows(settings: Settings, ids: list[int]) -> list[dict[str, Any]]:
    with psycopg.connect(settings.database.ingest.conninfo()) as conn:
        cursor = conn.cursor(row_factory=psycopg.rows.dict_row)
        rows = cursor.execute(
            "SELECT s.*, p.id IS NOT NULL AS pending FROM submission s "
            "LEFT JOIN pending_submission p ON p.id = s.id WHERE s.id = ANY(%s) ORDER BY s.id",
            (ids,),
        ).fetchall()
    return rows


def stream_message_ids(settings: Settings, ids: list[int]) -> list[str | None]:
    """Nats-Msg-Id of the stored message of each submission id (None when absent)."""

    async def read() -> list[str | None]:
        client = await nats.connect(settings.nats.servers)
        js = client.jetstream()
        found: list[str | None] = []
        try:
            for submission_id in ids:
                subject = f"{settings.nats.subject_prefix}.{submission_id}"
                try:
                    message = await js.get_last_msg(settings.nats.stream, subject)
                except nats.js.errors.NotFoundError:
                    found.append(None)
                    continue
                found.append((message.headers or {}).get("Nats-Msg-Id"))
        finally:
            await client.close()
        return found

    return asyncio.run(read())


def test_submit_stores_rows_then_publishes_their_ids(
    client: TestClient, keys: Keys, api_settings: Settings
) -> None:
    mbid = uuid.uuid4()
    response = client.post(
        "/v2/submit",
        data={
            "client": keys.client_key,
            "clientversion": "2.1",
            "user": keys.user_key,
            "duration": "300",
            "fingerprint": FINGERPRINT,
            "mbid": str(mbid),
            "bitrate": "192",
            "fileformat": "FLAC",
            "track": " Title ",
            "artist": "Artist",
            "albumartist": "Various",
            "trackno": "3",
            "year": "nope",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    [submission] = body["submissions"]
    assert submission["status"] == "pending"
    assert "index" not in submission
    [row] = submission_rows(api_settings, [submission["id"]])
    assert row["mbid"] == mbid
    assert row["length"] == 300
    assert row["bitrate"] == 192
    assert row["format"] == "FLAC"
    assert row["application_id"] == keys.application_id
    assert row["application_version"] == "2.1"
    assert row["account_id"] == keys.account_id
    assert row["meta"] == {
        "track": "Title",
        "artist": "Artist",
        "album_artist": "Various",
        "track_no": 3,
    }
    assert row["pending"] is True
    assert row["handled"] is False
    # every hash as sent, the sign bit included (they go packed in PostgreSQL's binary format)
    assert row["fingerprint"] == as_int32(random_hashes(7, 300)).tolist()
    assert stream_message_ids(api_settings, [submission["id"]]) == [str(submission["id"])]


def test_batch_submit_makes_one_row_per_mbid_and_reports_suffixes(
    client: TestClient, keys: Keys, api_settings: Settings
) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    body = urlencode(
        [
            ("client", keys.client_key),
            ("user", keys.user_key),
            ("fingerprint.0", FINGERPRINT),
            ("duration.0", "300"),
            ("mbid.0", str(first)),
            ("mbid.0", str(second)),
            ("fingerprint.1", FINGERPRINT),
            ("duration.1", "300"),
            ("puid.1", str(uuid.uuid4())),
            ("fingerprint.2", FINGERPRINT),  # nothing to link it to: dropped silently
            ("duration.2", "300"),
        ]
    )
    response = client.post(
        "/v2/submit",
        content=gzip.compress(body.encode()),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Content-Encoding": "gzip",
        },
    )
    assert response.status_code == 200, response.text
    submissions = response.json()["submissions"]
    assert [(s["index"], s["status"]) for s in submissions] == [
        ("0", "pending"),
        ("0", "pending"),
        ("1", "pending"),
    ]
    ids = [s["id"] for s in submissions]
    rows = submission_rows(api_settings, ids)
    assert [row["mbid"] for row in rows] == [first, second, None]
    assert rows[2]["puid"] is not None
    assert stream_message_ids(api_settings, ids) == [str(i) for i in ids]


def test_submit_answers_ok_and_keeps_the_row_when_nats_is_down(
    api_settings: Settings, keys: Keys
) -> None:
    nowhere = f"nats://127.0.0.1:{free_port()}"
    settings = dataclasses.replace(
        api_settings, nats=dataclasses.replace(api_settings.nats, servers=[nowhere])
    )
    with make_client(settings) as offline:
        response = offline.post(
            "/v2/submit",
            data={
                "client": keys.client_key,
                "user": keys.user_key,
                "duration": "300",
                "fingerprint": FINGERPRINT,
                "mbid": str(uuid.uuid4()),
            },
        )
    assert response.status_code == 200, response.text
    [submission] = response.json()["submissions"]
    [row] = submission_rows(api_settings, [submission["id"]])
    assert row["pending"] is True  # the outbox re-publishes it later
    assert stream_message_ids(api_settings, [submission["id"]]) == [None]


def test_submission_status_reports_pending_then_imported(
    client: TestClient, keys: Keys, api_settings: Settings
) -> None:
    submitted = client.post(
        "/v2/submit",
        data={
            "client": keys.client_key,
            "user": keys.user_key,
            "duration": "300",
            "fingerprint": FINGERPRINT,
            "mbid": str(uuid.uuid4()),
        },
    ).json()
    submission_id = submitted["submissions"][0]["id"]
    status = client.get(
        "/v2/submission_status", params={"client": keys.client_key, "id": str(submission_id)}
    )
    assert status.json() == {
        "status": "ok",
        "submissions": [{"id": submission_id, "status": "pending"}],
    }
    track_gid = uuid.uuid4()
    with psycopg.connect(api_settings.database.ingest.conninfo(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO submission_result (submission_id, account_id, application_id, "
            "fingerprint_id, track_id, track_gid) VALUES (%s, %s, %s, 1, 1, %s)",
            (submission_id, keys.account_id, keys.application_id, track_gid),
        )
        # as the worker leaves it: a pending submission with a result would poison its imports
        conn.execute("UPDATE submission SET handled = true WHERE id = %s", (submission_id,))
    imported = client.get(
        "/v2/submission_status", params={"client": keys.client_key, "id": str(submission_id)}
    )
    assert imported.json()["submissions"] == [
        {"id": submission_id, "status": "imported", "result": {"id": str(track_gid)}}
    ]


ERRORS = [
    ({"user": None}, 2, 'missing required parameter "user"'),
    ({"user": "nobody"}, 6, 'invalid user API key ("User with the API key does not exist")'),
    ({"client": "nobody"}, 4, "invalid API key"),
    ({"fingerprint": None}, 2, 'missing required parameter "fingerprint"'),
    ({"fingerprint": "%%%"}, 3, "invalid fingerprint"),
    ({"duration": None}, 2, 'missing required parameter "duration"'),
    ({"duration": "40000"}, 8, 'parameter "duration" must be a positive integer'),
    ({"bitrate": "-1"}, 9, 'parameter "bitrate" must be a positive integer'),
    ({"mbid": "not-a-uuid"}, 7, 'parameter "mbid" is not a valid UUID'),
    ({"puid": "1234"}, 7, 'parameter "puid" is not a valid UUID'),
    (
        {"foreignid": "nocolon"},
        10,
        'parameter "foreignid" is not a valid foreign ID, it must be in the format vendor:id',
    ),
]


@pytest.mark.parametrize("case", ERRORS, ids=[str(case[0]) for case in ERRORS])
def test_submit_errors(
    client: TestClient, keys: Keys, case: tuple[dict[str, str | None], int, str]
) -> None:
    params, code, message = case
    base: dict[str, str | None] = {
        "client": keys.client_key,
        "user": keys.user_key,
        "duration": "300",
        "fingerprint": FINGERPRINT,
        "mbid": str(uuid.uuid4()),
    }
    data = {name: value for name, value in {**base, **params}.items() if value is not None}
    response = client.post("/v2/submit", data=data)
    assert response.status_code == 400
    assert response.json() == {"status": "error", "error": {"code": code, "message": message}}


def test_submit_stores_an_over_long_client_version_and_file_format_cut_to_their_limits(
    client: TestClient, keys: Keys, api_settings: Settings
) -> None:
    # each would otherwise be stored under a unique index (source.version, format.name) that
    # refuses entries over 2704 bytes, failing the import of every batch it is part of
    version, file_format = secrets.token_urlsafe(4500), secrets.token_urlsafe(4500)
    response = client.post(
        "/v2/submit",
        data={
            "client": keys.client_key,
            "clientversion": version,
            "user": keys.user_key,
            "duration": "300",
            "fingerprint": FINGERPRINT,
            "mbid": str(uuid.uuid4()),
            "fileformat": file_format,
        },
    )

    assert response.status_code == 200, response.text
    [submission] = response.json()["submissions"]
    [row] = submission_rows(api_settings, [submission["id"]])
    assert row["application_version"] == version[: text_limits.CLIENT_VERSION]
    assert row["format"] == file_format[: text_limits.FILE_FORMAT]


def test_submit_refuses_a_foreign_id_longer_than_its_limit_with_error_10(
    client: TestClient, keys: Keys
) -> None:
    foreignid = "vendor:" + "x" * (text_limits.FOREIGN_ID - len("vendor:") + 1)
    response = client.post(
        "/v2/submit",
        data={
            "client": keys.client_key,
            "user": keys.user_key,
            "duration": "300",
            "fingerprint": FINGERPRINT,
            "foreignid": foreignid,
        },
    )

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": 10,
        "message": 'parameter "foreignid" is not a valid foreign ID, it must be at most '
        f"{text_limits.FOREIGN_ID} characters",
    }
