"""The matcher on a real index server and the real fingerprint database: a batch of queries
costs one index request per shard and finds what the queries find one by one."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import numpy as np

from acoustid_stack.config import Settings
from acoustid_stack.db.reader import Reader
from acoustid_stack.index.client import ShardedIndexClient
from acoustid_stack.index.interfaces import SearchHit, SearchOptions
from acoustid_stack.matching import FingerprintMatch, Matcher
from acoustid_stack.matching.candidates import DatabaseCandidates
from api_support import INDEX_NAME, Catalog, random_hashes


class RecordingIndex(ShardedIndexClient):
    """The real client, noting which of its search calls the matcher makes."""

    def __init__(self, url: str) -> None:
        super().__init__(shards=[url], index=INDEX_NAME)
        self.calls: list[tuple[str, int]] = []

    async def search(
        self, query: Sequence[int], options: SearchOptions | None = None
    ) -> list[SearchHit]:
        self.calls.append(("search", 1))
        return await super().search(query, options)

    async def search_many(
        self, queries: Sequence[Sequence[int]], options: SearchOptions | None = None
    ) -> list[list[SearchHit]]:
        self.calls.append(("search_many", len(queries)))
        return await super().search_many(queries, options)


def test_a_batch_is_one_index_request_and_finds_what_single_queries_find(
    api_settings: Settings, catalog: Catalog, index_url: str
) -> None:
    songs = [random_hashes(7001 + seed) for seed in range(3)]
    tracks = [catalog.add(hashes, 200, mbids=(uuid.uuid4(),))[1] for hashes in songs]
    # the second song with its start cut off; then one nobody submitted
    queries = [
        (songs[0], 200),
        (songs[1][40:], 195),
        (random_hashes(7999), 200),
        (songs[2], 200),
        (np.zeros(0, dtype=np.uint32), 200),  # too short to search: no request, no match
    ]

    async def scenario() -> tuple[
        list[list[FingerprintMatch]], list[list[FingerprintMatch]], list[tuple[str, int]]
    ]:
        index = RecordingIndex(index_url)
        reader = Reader(api_settings.database.fingerprint, max_size=2)
        matcher = Matcher(index=index, candidates=DatabaseCandidates(reader=reader))
        try:
            together = await matcher.find_many(queries, min_score=0.4)
            batch_calls = list(index.calls)
            alone = [await matcher.find(h, n, min_score=0.4) for h, n in queries]
        finally:
            await index.close()
            await reader.close()
        return together, alone, batch_calls

    together, alone, batch_calls = asyncio.run(scenario())
    assert batch_calls == [("search_many", 4)]
    assert together == alone
    found = [[match.track_gid for match in matches] for matches in together]
    assert found == [[tracks[0]], [tracks[1]], [], [tracks[2]], []]
    assert all(matches[0].score > 0.9 for matches in together if matches)
