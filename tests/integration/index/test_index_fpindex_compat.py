"""What a client written for upstream fpindex meets on our server (issue 15): content
negotiation, error names, index create/delete answers, clamped search options, readiness
and metric names."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from index_servers import INDEX, IndexServer

from acoustid_stack.index.client import ShardedIndexClient
from acoustid_stack.index.interfaces import Insert, ShardUnavailableError
from acoustid_stack.index.store import MANIFEST, IndexStore

pytestmark = pytest.mark.integration

MSGPACK = "application/vnd.msgpack"


@pytest.fixture
def server(shared_server: IndexServer) -> IndexServer:
    """The module's server with an empty `fingerprints` index (one start for all tests)."""
    assert shared_server.call("DELETE", f"/{INDEX}", {})[0] == 200
    assert shared_server.call("PUT", f"/{INDEX}", {})[0] == 200
    return shared_server


def raw_call(
    server: IndexServer, method: str, path: str, body: bytes = b"", **headers: str
) -> tuple[int, str, Any]:
    """A request with exactly `headers` (urllib would add a form Content-Type); the reply
    decoded by its own Content-Type."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request(
            method, path, body=body, headers={k.replace("_", "-"): v for k, v in headers.items()}
        )
        response = connection.getresponse()
        raw = response.read()
        content_type = response.headers.get("Content-Type", "")
    finally:
        connection.close()
    if content_type == MSGPACK:
        return response.status, content_type, msgpack.unpackb(raw)
    if content_type == "application/json":
        return response.status, content_type, json.loads(raw)
    return response.status, content_type, raw


def test_a_body_without_content_type_is_messagepack(server: IndexServer) -> None:
    update = msgpack.packb({"c": [{"i": {"i": 3, "h": [1, 2, 3]}}]})
    assert raw_call(server, "POST", f"/{INDEX}/_update", update) == (200, MSGPACK, {"v": 1})
    search = msgpack.packb({"q": [1, 2, 3]})
    assert raw_call(server, "POST", f"/{INDEX}/_search", search) == (
        200,
        MSGPACK,
        {"r": [{"i": 3, "s": 3}]},
    )
    # JSON without its Content-Type is a malformed MessagePack body, answered in MessagePack
    status, content_type, reply = raw_call(
        server, "POST", f"/{INDEX}/_search", b'{"query": [1, 2, 3]}'
    )
    assert (status, content_type, reply["e"]) == (400, MSGPACK, "BadRequest")
    # an explicit Accept still wins
    status, content_type, reply = raw_call(
        server, "POST", f"/{INDEX}/_search", search, Accept="application/json"
    )
    assert (status, content_type, reply) == (
        200,
        "application/json",
        {"results": [{"id": 3, "score": 3}]},
    )


@pytest.mark.parametrize("media", [MSGPACK, "application/msgpack"])
def test_both_messagepack_media_types_are_accepted(server: IndexServer, media: str) -> None:
    body = msgpack.packb({"q": [7]})
    assert raw_call(server, "POST", f"/{INDEX}/_search", body, Content_Type=media)[:2] == (
        200,
        MSGPACK,
    )


@pytest.mark.parametrize(
    "media", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_an_unknown_content_type_is_415_and_changes_nothing(
    server: IndexServer, media: str
) -> None:
    body = json.dumps({"changes": [{"insert": {"id": 5, "hashes": [5]}}]}).encode()
    status, content_type, reply = raw_call(
        server, "POST", f"/{INDEX}/_update", body, Content_Type=media
    )
    assert (status, content_type, reply["error"]) == (
        415,
        "application/json",
        "UnsupportedMediaType",
    )
    assert server.call("GET", f"/{INDEX}")[1]["version"] == 0
    status, content_type, reply = raw_call(
        server, "POST", f"/{INDEX}/_update", body, Content_Type=media, Accept=MSGPACK
    )
    assert (status, content_type, reply["e"]) == (415, MSGPACK, "UnsupportedMediaType")


def test_create_and_delete_answer_as_upstream_and_honour_generation(server: IndexServer) -> None:
    def put(body: dict[str, Any]) -> tuple[int, Any]:
        return server.call("PUT", "/lineage", body)

    assert put({"generation": 5}) == (200, {"version": 0, "ready": True, "generation": 5})
    assert put({}) == (200, {"version": 0, "ready": True, "generation": 5})
    assert put({"generation": 5}) == (200, {"version": 0, "ready": True, "generation": 5})
    assert put({"generation": 4})[1]["error"] == "OlderIndexAlreadyExists"
    assert put({"generation": 6})[1]["error"] == "NewerIndexAlreadyExists"
    assert put({"generation": 4})[0] == put({"generation": 6})[0] == 409
    status, reply = put({"expect_does_not_exist": True})
    assert (status, reply["error"]) == (409, "IndexAlreadyExists")
    for bad in (0, -1, "5", 1.5):
        status, reply = put({"generation": bad})
        assert (status, reply["error"]) == (400, "GenerationNotAllowed")
    assert server.call("PUT", "/_lineage", {})[1]["error"] == "InvalidIndexName"
    # msgpack with upstream's one-letter keys
    status, content_type, reply = raw_call(
        server, "PUT", "/lineage", msgpack.packb({"g": 5}), Content_Type=MSGPACK
    )
    assert (status, content_type, reply) == (200, MSGPACK, {"v": 0, "r": True, "g": 5})
    assert server.call("DELETE", "/lineage", {}) == (200, {"deleted": True})
    assert server.call("DELETE", "/lineage", {}) == (200, {"deleted": False})
    status, reply = server.call("DELETE", "/lineage", {"expect_exists": True})
    assert (status, reply["error"]) == (404, "IndexNotFound")
    assert put({"generation": 2})[1]["generation"] == 2


def test_documents_answer_empty_maps_and_named_errors(server: IndexServer) -> None:
    assert server.call("PUT", f"/{INDEX}/9", {"hashes": [1, 2]}) == (200, {})
    assert server.call("GET", f"/{INDEX}/9") == (200, {"version": 1})
    assert server.call("DELETE", f"/{INDEX}/9") == (200, {})
    status, reply = server.call("GET", f"/{INDEX}/9")
    assert (status, reply["error"]) == (404, "FingerprintNotFound")
    status, reply = server.call("GET", f"/{INDEX}/0")
    assert (status, reply["error"]) == (400, "InvalidFingerprintId")
    status, reply = server.call("GET", "/nothing/1")
    assert (status, reply["error"]) == (404, "IndexNotFound")
    status, reply = server.call("POST", f"/{INDEX}/_update", {"changes": [], "expected_version": 9})
    assert (status, reply["error"]) == (409, "VersionMismatch")
    assert "expected version 9" in reply["detail"]


def test_search_clamps_limit_and_score_pct_as_upstream(server: IndexServer) -> None:
    changes = [{"insert": {"id": i, "hashes": list(range(i))}} for i in range(1, 131)]
    assert server.call("POST", f"/{INDEX}/_update", {"changes": changes})[0] == 200
    query = list(range(130))

    def ids(**options: int) -> list[int]:
        status, reply = server.call(
            "POST", f"/{INDEX}/_search", {"query": query, "min_score": 1, **options}
        )
        assert status == 200, reply
        return [hit["id"] for hit in reply["results"]]

    assert ids(limit=0, score_pct=0) == [130]
    assert ids(limit=1000, score_pct=0) == list(range(130, 30, -1))
    assert ids(limit=100, score_pct=500) == [130]  # as 100: the top score only


def test_health_is_not_ok_while_an_index_cannot_serve(tmp_path: Path) -> None:
    """Upstream answers nothing before every index is loaded; ours answers 503 LOADING.
    The index's manifest is a named pipe here, so loading waits until the test feeds it."""
    data_dir = tmp_path / "data"
    store = IndexStore.create(data_dir / INDEX)
    store.open()
    store.update([Insert(1, np.array([1, 2, 3], np.uint32))])
    store.checkpoint()
    store.close()
    manifest = data_dir / INDEX / MANIFEST
    content = manifest.read_bytes()
    manifest.unlink()
    os.mkfifo(manifest)
    server = IndexServer(data_dir, tmp_path / "logs")
    server.process.start()  # not waiting for readiness: that is what is under test
    feeder = threading.Thread(target=manifest.write_bytes, args=(content,), daemon=True)
    try:
        while True:
            try:
                health = server.call("GET", "/_health")
                break
            except OSError:
                continue  # not listening yet
        assert health == (503, b"LOADING\n")
        assert server.call("GET", f"/{INDEX}/_health") == (503, b"LOADING\n")
        status, reply = server.call("POST", f"/{INDEX}/_search", {"query": [1, 2, 3]})
        assert (status, reply["error"]) == (503, "IndexNotReady")

        feeder.start()
        give_up = time.monotonic() + 60  # only against a hang: loading one document
        while health != (200, b"OK\n") and time.monotonic() < give_up:
            assert health == (503, b"LOADING\n")
            health = server.call("GET", "/_health")
        assert health == (200, b"OK\n"), server.process.log_tail(20)
        status, reply = server.call("POST", f"/{INDEX}/_search", {"query": [1, 2, 3]})
        assert (status, reply) == (200, {"results": [{"id": 1, "score": 3}]})
    finally:
        if feeder.ident is None:  # failed before: let the blocked load end, then stop
            feeder.start()
        server.stop()


def samples(server: IndexServer) -> dict[str, float]:
    status, raw = server.call("GET", "/_metrics")
    assert status == 200
    found = re.findall(rf'^(fpindex_[a-z_]+)\{{index="{INDEX}"\}} (\S+)$', raw.decode(), re.M)
    return {name: float(value) for name, value in found}


def test_metrics_carry_upstream_names(server: IndexServer) -> None:
    before = samples(server)
    server.call("POST", f"/{INDEX}/_update", {"changes": [{"insert": {"id": 1, "hashes": [4]}}]})
    server.call("PUT", f"/{INDEX}/2", {"hashes": [4, 5]})
    server.call("POST", f"/{INDEX}/_search", {"query": [4]})
    server.call("POST", f"/{INDEX}/_search", {"query": [99]})
    server.call("POST", f"/{INDEX}/_msearch", {"queries": [[5], [98]]})
    # a snapshot checkpoints the memory segment (unless an idle flush did it already)
    assert server.call("GET", f"/{INDEX}/_snapshot")[0] == 200
    after = samples(server)

    def added(name: str) -> float:
        return after[name] - before.get(name, 0.0)

    assert added("fpindex_searches_total") == 4
    assert added("fpindex_search_hits_total") == 2
    assert added("fpindex_search_misses_total") == 2
    assert added("fpindex_search_duration_seconds_count") == 4
    assert added("fpindex_scanned_docs_per_hash_count") == 4
    # the postings read per term: query [4] reads the two documents holding 4
    assert added("fpindex_scanned_docs_per_hash_sum") >= 2
    assert added("fpindex_updates_total") == 2
    assert added("fpindex_checkpoints_total") >= 1
    assert (after["fpindex_docs"], after["fpindex_version"]) == (2, 2)
    text = server.call("GET", "/_metrics")[1].decode()
    for name in ("memory_merges", "file_merges"):
        assert f"# TYPE fpindex_{name}_total counter" in text


def test_our_client_reports_the_error_name_and_detail(
    server: IndexServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Our client speaks MessagePack: an error answer is decoded, not dumped as bytes."""

    async def scenario() -> None:
        client = ShardedIndexClient(shards=[server.url], index="missing")
        try:
            with pytest.raises(ShardUnavailableError):
                await client.insert(1, [1, 2])
        finally:
            await client.close()

    with caplog.at_level(logging.WARNING, logger="acoustid_stack.index.client"):
        asyncio.run(scenario())
    assert "HTTP 404 IndexNotFound: index 'missing' does not exist" in caplog.text
