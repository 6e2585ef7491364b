"""Issue 17 item 12: the index caps a request body's bytes before decoding it."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from integration.index.index_servers import INDEX, IndexServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def index_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    root: Path = tmp_path_factory.mktemp("security-index")
    server = IndexServer(root / "data", root / "logs")
    try:
        yield server.start()
    finally:
        server.stop()


def test_a_search_body_of_9_mib_is_refused_with_413_before_decoding(
    index_server: IndexServer,
) -> None:
    # 9 MiB of JSON that would decode into ~3 M Python ints
    body = b'{"query": [' + b",".join([b"4294967295"] * 860_000) + b"]}"
    assert len(body) > 9 * 1024 * 1024 - 200_000

    reply = httpx.post(
        f"{index_server.url}/{INDEX}/_search",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )

    assert reply.status_code == 413
    assert reply.json()["error"] == "PayloadTooLarge"


def test_an_msearch_of_1000_queries_of_120_terms_in_json_still_fits(
    index_server: IndexServer,
) -> None:
    rng = random.Random(17)
    queries = [[rng.randrange(2**32) for _ in range(120)] for _ in range(1000)]

    reply = httpx.post(
        f"{index_server.url}/{INDEX}/_msearch",
        content=json.dumps({"queries": queries, "timeout": 30_000}),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )

    assert reply.status_code == 200
    assert len(reply.json()["results"]) == 1000
