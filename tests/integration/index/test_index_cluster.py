"""Three shards behind the client's consistent-hash ring: placement, fan-out, a shard down."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import Callable

import numpy as np
import pytest
from index_servers import INDEX, IndexServer

from acoustid_stack.index.client import SHARD_FAILURES, ShardedIndexClient
from acoustid_stack.index.interfaces import Insert, SearchOptions, ShardUnavailableError

pytestmark = pytest.mark.integration


def documents(count: int, seed: int) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {i: rng.integers(0, 2**32, 40, dtype=np.uint32) for i in range(1, count + 1)}


@pytest.fixture
def cluster(start_server: Callable[..., IndexServer]) -> list[IndexServer]:
    return [start_server() for _ in range(3)]


def test_three_shards_place_by_ring_fan_out_and_degrade(cluster: list[IndexServer]) -> None:
    docs = documents(600, seed=1)

    async def scenario() -> None:
        client = ShardedIndexClient(shards=[s.url for s in cluster], index=INDEX, timeout=2.0)
        try:
            await client.ensure_index()
            await client.update([Insert(i, h) for i, h in docs.items()])

            # placement: each document lives on exactly the shard the ring names
            by_url = {s.url: s for s in cluster}
            counts = dict.fromkeys(by_url, 0)
            for doc_id in list(docs)[:60]:
                owner = client.ring.owner(doc_id)
                for url, server in by_url.items():
                    expected = 200 if url == owner else 404
                    assert server.call("HEAD", f"/{INDEX}/{doc_id}")[0] == expected
            for doc_id in docs:
                counts[client.ring.owner(doc_id)] += 1
            assert all(count > 100 for count in counts.values()), counts

            # fan-out: every document is found whichever shard holds it
            for doc_id, hashes in list(docs.items())[:50]:
                hits = await client.search(hashes.tolist(), SearchOptions(limit=3))
                assert hits[0].id == doc_id
                assert hits[0].score == 40

            # one shard down: searches answer from the others, within the timeout
            down = cluster[1]
            down.kill()
            failures_before = SHARD_FAILURES.labels(down.url, "search")._value.get()
            for doc_id, hashes in list(docs.items())[:50]:
                started = asyncio.get_running_loop().time()
                hits = await client.search(hashes.tolist(), SearchOptions(timeout=0.5))
                assert asyncio.get_running_loop().time() - started < 2.0
                if client.ring.owner(doc_id) == down.url:
                    assert doc_id not in {h.id for h in hits}
                else:
                    assert hits[0].id == doc_id
            assert SHARD_FAILURES.labels(down.url, "search")._value.get() >= failures_before + 50

            # writes owned by the down shard fail loudly; others still work
            owned = next(i for i in range(10_000, 20_000) if client.ring.owner(i) == down.url)
            with pytest.raises(ShardUnavailableError):
                await client.insert(owned, [1, 2, 3])
            other = next(i for i in range(10_000, 20_000) if client.ring.owner(i) != down.url)
            await client.insert(other, [1, 2, 3])
        finally:
            await client.close()

    asyncio.run(scenario())


class _WithoutMsearch(ShardedIndexClient):
    """A client whose batch route the server does not know, as an upstream fpindex would
    not know ours."""

    SEARCH_MANY = "_nosuchsearch"


@pytest.mark.parametrize("client_class", [ShardedIndexClient, _WithoutMsearch])
def test_search_many_answers_as_searches_one_by_one_would_also_with_a_shard_down(
    cluster: list[IndexServer], client_class: type[ShardedIndexClient]
) -> None:
    docs = documents(300, seed=2)
    queries = [hashes.tolist() for hashes in list(docs.values())[:40]] + [[7, 8, 9]]

    async def scenario() -> None:
        client = client_class(shards=[s.url for s in cluster], index=INDEX, timeout=2.0)
        try:
            await client.ensure_index()
            await client.update([Insert(i, h) for i, h in docs.items()])
            options = SearchOptions(limit=3)
            many = await client.search_many(queries, options)
            assert many == [await client.search(q, options) for q in queries]
            assert await client.search_many(queries, options, require_all=True) == many
            assert [hits[0].id for hits in many[:40]] == list(docs)[:40]
            assert many[40] == []
            # the batch route was used, or refused and every shard searched query by query
            fell_back = set(client.ring.shards) if client_class is _WithoutMsearch else set()
            assert set(client._single_search_until) == fell_back
            if client_class is ShardedIndexClient:  # more queries than one request takes
                assert await client.search_many(queries * 25, options) == many * 25

            down = cluster[2]
            down.kill()
            degraded = SearchOptions(limit=3, timeout=0.5)
            # an import must not take a shard's silence for "no match"
            with pytest.raises(ShardUnavailableError, match=re.escape(down.url)):
                await client.search_many(queries[:40], degraded, require_all=True)
            many = await client.search_many(queries[:40], degraded)
            for doc_id, hits in zip(list(docs)[:40], many, strict=True):
                if client.ring.owner(doc_id) == down.url:
                    assert doc_id not in {h.id for h in hits}
                else:
                    assert hits[0].id == doc_id
        finally:
            await client.close()

    asyncio.run(scenario())


def test_reshard_moves_only_the_ids_the_new_ring_places_elsewhere(
    cluster: list[IndexServer], start_server: Callable[..., IndexServer]
) -> None:
    docs = documents(400, seed=2)
    old = [s.url for s in cluster]
    extra = start_server()
    new = [*old, extra.url]

    async def load() -> None:
        client = ShardedIndexClient(shards=old, index=INDEX)
        try:
            await client.update([Insert(i, h) for i, h in docs.items()])
        finally:
            await client.close()

    asyncio.run(load())
    result = subprocess.run(
        [
            shutil.which("acoustid-stack") or "acoustid-stack",
            "index",
            "reshard",
            "--from",
            ",".join(old),
            "--to",
            ",".join(new),
            "--name",
            INDEX,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    old_client = ShardedIndexClient(shards=old, index=INDEX)
    new_client = ShardedIndexClient(shards=new, index=INDEX)
    moved = [i for i in docs if new_client.ring.owner(i) == extra.url]
    assert 0 < len(moved) < len(docs) // 2
    # ids that stay keep their owner: only the moved ones changed shard
    assert all(new_client.ring.owner(i) == old_client.ring.owner(i) for i in docs if i not in moved)
    servers = {s.url: s for s in [*cluster, extra]}
    for doc_id in docs:
        owner = new_client.ring.owner(doc_id)
        for url, server in servers.items():
            expected = 200 if url == owner else 404
            assert server.call("HEAD", f"/{INDEX}/{doc_id}")[0] == expected, (doc_id, url)

    async def search_all() -> None:
        try:
            for doc_id, hashes in list(docs.items())[:40]:
                hits = await new_client.search(hashes.tolist())
                assert hits[0].id == doc_id
        finally:
            await new_client.close()
            await old_client.close()

    asyncio.run(search_all())
