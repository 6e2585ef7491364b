"""The fpindex HTTP API round trips in JSON and MessagePack; bad requests change nothing."""

from __future__ import annotations

import http.client
import json
import urllib.request

import msgpack
import pytest
from index_servers import INDEX, IndexServer

pytestmark = pytest.mark.integration

MSGPACK = "application/vnd.msgpack"


def msgpack_call(server: IndexServer, method: str, path: str, body: object) -> tuple[int, object]:
    request = urllib.request.Request(f"{server.url}{path}", data=msgpack.packb(body), method=method)
    request.add_header("Content-Type", MSGPACK)
    request.add_header("Accept", MSGPACK)
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"].startswith(MSGPACK)
        return response.status, msgpack.unpackb(response.read())


def test_json_round_trip_of_every_endpoint(server: IndexServer) -> None:
    assert server.call("GET", "/_health")[0] == 200
    assert server.call("PUT", "/other", {})[1] == {"version": 0, "ready": True, "generation": 1}
    status, reply = server.call(
        "POST",
        f"/{INDEX}/_update",
        {
            "changes": [
                {"insert": {"id": 1, "hashes": [10, 20, 30, 40]}},
                {"insert": {"id": 2, "hashes": [30, 40, 50]}},
                {"insert": {"id": 3, "hashes": [99]}},
                {"delete": {"id": 3}},
            ],
            "metadata": {"max_document_id": 3},
        },
    )
    assert (status, reply) == (200, {"version": 1})
    _, reply = server.call("POST", f"/{INDEX}/_search", {"query": [10, 20, 30, 40]})
    assert reply == {"results": [{"id": 1, "score": 4}, {"id": 2, "score": 2}]}
    status, reply = server.call(
        "POST", f"/{INDEX}/_search", {"query": [10, 20, 30, 40], "score_pct": 60, "limit": 5}
    )
    assert reply == {"results": [{"id": 1, "score": 4}]}
    assert server.call("PUT", f"/{INDEX}/7", {"hashes": [7, 8]}) == (200, {})
    assert server.call("GET", f"/{INDEX}/7") == (200, {"version": 2})
    assert server.call("HEAD", f"/{INDEX}/7")[0] == 200
    assert server.call("DELETE", f"/{INDEX}/7") == (200, {})
    assert server.call("HEAD", f"/{INDEX}/7")[0] == 404
    assert server.call("GET", f"/{INDEX}/3")[0] == 404
    status, info = server.call("GET", f"/{INDEX}")
    assert info == {
        "version": 3,
        "metadata": {"max_document_id": 3},
        "stats": {
            "min_doc_id": 1,
            "max_doc_id": 2,
            "num_segments": info["stats"]["num_segments"],
            "num_docs": 2,
        },
    }
    status, reply = server.call("GET", f"/{INDEX}/_status")
    assert reply["version"] == 3
    assert reply["generation"] == 1
    assert server.call("GET", f"/{INDEX}/_health")[0] == 200
    status, metrics = server.call("GET", "/_metrics")
    text = metrics.decode()
    for name in (
        "fpindex_search_duration_seconds",
        "fpindex_insert_duration_seconds",
        "fpindex_segment_count",
        "fpindex_memory_segment_size_bytes",
        "fpindex_file_segment_size_bytes",
        "fpindex_document_count",
        "fpindex_wal_size_bytes",
    ):
        assert name in text
    assert server.call("GET", "/metrics")[0] == 200
    assert server.call("DELETE", "/other", {}) == (200, {"deleted": True})
    assert server.call("DELETE", "/other", {}) == (200, {"deleted": False})
    assert server.call("GET", "/other")[0] == 404


def test_msgpack_round_trip_with_single_letter_keys(server: IndexServer) -> None:
    _, reply = msgpack_call(
        server,
        "POST",
        f"/{INDEX}/_update",
        {"c": [{"i": {"i": 5, "h": [1, 2, 3]}}, {"i": {"i": 6, "h": [3, 4]}}]},
    )
    assert reply == {"v": 1}
    _, reply = msgpack_call(server, "POST", f"/{INDEX}/_search", {"q": [1, 2, 3], "l": 10})
    assert reply == {"r": [{"i": 5, "s": 3}, {"i": 6, "s": 1}]}
    # long names are accepted in msgpack too
    _, reply = msgpack_call(
        server,
        "POST",
        f"/{INDEX}/_update",
        {"changes": [{"delete": {"id": 6}}], "expected_version": 1},
    )
    assert reply == {"v": 2}
    _, reply = msgpack_call(server, "POST", f"/{INDEX}/_search", {"query": [3, 4]})
    assert reply == {"r": [{"i": 5, "s": 1}]}


def test_msearch_answers_each_query_as_search_does_in_order(server: IndexServer) -> None:
    server.call(
        "POST",
        f"/{INDEX}/_update",
        {
            "changes": [
                {"insert": {"id": 5, "hashes": [1, 2, 3]}},
                {"insert": {"id": 6, "hashes": [3, 4]}},
            ]
        },
    )
    queries = [[1, 2, 3], [9], [3, 4], [4]]
    status, reply = server.call(
        "POST", f"/{INDEX}/_msearch", {"queries": queries, "limit": 10, "min_score": 1}
    )
    assert status == 200
    singles = [
        server.call("POST", f"/{INDEX}/_search", {"query": q, "limit": 10, "min_score": 1})[1]
        for q in queries
    ]
    assert isinstance(reply, dict)
    assert reply["results"] == [single["results"] for single in singles]
    assert reply["results"][0] == [{"id": 5, "score": 3}, {"id": 6, "score": 1}]
    # msgpack answers with one-letter keys down to the hits
    _, packed = msgpack_call(server, "POST", f"/{INDEX}/_msearch", {"queries": [[3, 4]]})
    assert packed == {"r": [[{"i": 6, "s": 2}, {"i": 5, "s": 1}]]}


def content(server: IndexServer) -> dict[str, object]:
    """What the index holds, without its segment count: background merges change that alone."""
    info = server.call("GET", f"/{INDEX}")[1]
    assert isinstance(info, dict)
    stats = {k: v for k, v in info["stats"].items() if k != "num_segments"}
    return {**info, "stats": stats}


BAD_REQUESTS = [
    ("POST", "/missing/_search", b'{"query": [1]}', "application/json", 404, "IndexNotFound"),
    (
        "POST",
        f"/{INDEX}/_update",
        b'{"changes": [{"insert": {"id": 0, "hashes": [1]}}]}',
        "application/json",
        400,
        "InvalidFingerprintId",
    ),
    (
        "POST",
        f"/{INDEX}/_update",
        b'{"changes": [{"insert": {"id": 4294967296, "hashes": [1]}}]}',
        "application/json",
        400,
        "InvalidFingerprintId",
    ),
    (
        "POST",
        f"/{INDEX}/_update",
        b'{"changes": [{"insert": {"id": 9, "hashes": [1]}},'
        b' {"insert": {"id": 8, "hashes": [4294967296]}}]}',
        "application/json",
        400,
        "BadRequest",
    ),
    (
        "POST",
        f"/{INDEX}/_update",
        b'{"changes": [{"insert": {"id": 9, "hashes": [-1]}}]}',
        "application/json",
        400,
        "BadRequest",
    ),
    (
        "POST",
        f"/{INDEX}/_update",
        b'{"changes": [{"insert": {"id": "9", "hashes": [1]}}]}',
        "application/json",
        400,
        "InvalidFingerprintId",
    ),
    (
        "POST",
        f"/{INDEX}/_update",
        b'{"changes": [{"insert": {"id": 9, "hashes": [1.5]}}]}',
        "application/json",
        400,
        "BadRequest",
    ),
    (
        "POST",
        f"/{INDEX}/_update",
        b'{"changes": [{"upsert": {"id": 9}}]}',
        "application/json",
        400,
        "BadRequest",
    ),
    (
        "POST",
        f"/{INDEX}/_update",
        b'{"changes": {"insert": 1}}',
        "application/json",
        400,
        "BadRequest",
    ),
    ("POST", f"/{INDEX}/_update", b'{"changes": [', "application/json", 400, "BadRequest"),
    ("POST", f"/{INDEX}/_update", b"\xc1\xc1", MSGPACK, 400, "BadRequest"),
    ("POST", f"/{INDEX}/_update", b"[1, 2]", "application/json", 400, "BadRequest"),
    (
        "POST",
        f"/{INDEX}/_update",
        b'{"changes": [], "expected_version": 77}',
        "application/json",
        409,
        "VersionMismatch",
    ),
    ("POST", f"/{INDEX}/_search", b'{"query": "abc"}', "application/json", 400, "BadRequest"),
    (
        "POST",
        f"/{INDEX}/_search",
        b'{"query": [1], "limit": true}',
        "application/json",
        400,
        "BadRequest",
    ),
    ("POST", f"/{INDEX}/_search", b'{"limit": 3}', "application/json", 400, "BadRequest"),
    ("POST", f"/{INDEX}/_msearch", b'{"queries": []}', "application/json", 400, "BadRequest"),
    ("POST", f"/{INDEX}/_msearch", b'{"queries": [1, 2]}', "application/json", 400, "BadRequest"),
    (
        "POST",
        f"/{INDEX}/_msearch",
        b'{"queries": [[1], [-1]]}',
        "application/json",
        400,
        "BadRequest",
    ),
    ("POST", f"/{INDEX}/_msearch", b'{"query": [1]}', "application/json", 400, "BadRequest"),
    (
        "POST",
        f"/{INDEX}/_msearch",
        b'{"queries": [' + b",".join([b"[1]"] * 1001) + b"]}",
        "application/json",
        400,
        "BadRequest",
    ),
    ("PUT", f"/{INDEX}/0", b'{"hashes": [1]}', "application/json", 400, "InvalidFingerprintId"),
    ("PUT", f"/{INDEX}/abc", b'{"hashes": [1]}', "application/json", 400, "InvalidFingerprintId"),
    ("PUT", "/_bad", b"{}", "application/json", 400, "InvalidIndexName"),
    ("PATCH", f"/{INDEX}", b"{}", "application/json", 405, "MethodNotAllowed"),
]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=lambda case: f"{case[0]} {case[1]} {case[5]}")
@pytest.mark.parametrize("accept", ["application/json", MSGPACK])
def test_bad_request_gets_4xx_named_error_and_changes_nothing(
    shared_server: IndexServer, case: tuple[str, str, bytes, str, int, str], accept: str
) -> None:
    """fpindex's error name in the format the client accepts, our detail beside it."""
    method, path, body, content_type, status, name = case
    server = shared_server
    server.call("POST", f"/{INDEX}/_update", {"changes": [{"insert": {"id": 1, "hashes": [1]}}]})
    before = content(server)
    request = urllib.request.Request(f"{server.url}{path}", data=body, method=method)
    request.add_header("Content-Type", content_type)
    request.add_header("Accept", accept)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert caught.value.code == status
    assert caught.value.headers["Content-Type"] == accept
    raw = caught.value.read()
    if accept == MSGPACK:
        reply = msgpack.unpackb(raw)
        assert reply["e"] == name
        assert reply["d"]
    else:
        reply = json.loads(raw)
        assert reply["error"] == name
        assert reply["detail"]
    assert content(server) == before


def test_body_too_large_is_refused_with_413(shared_server: IndexServer) -> None:
    before = content(shared_server)
    connection = http.client.HTTPConnection("127.0.0.1", shared_server.port, timeout=30)
    connection.putrequest("POST", f"/{INDEX}/_update")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(64 * 1024 * 1024 + 1))
    connection.endheaders(b'{"changes": []}')
    response = connection.getresponse()
    assert response.status == 413
    assert "error" in json.loads(response.read())
    connection.close()
    assert content(shared_server) == before
