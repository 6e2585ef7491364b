"""Async client of a sharded fpindex deployment (ours or upstream), used by api and worker.

Placement: fingerprint ids sit on a consistent-hash ring with `vnodes` virtual nodes per
shard, so adding a shard moves only ~1/(n+1) of the ids (`index reshard` copies them).

Failure policy: a search fans out to every shard and answers from those that replied
within the timeout; a missing shard is logged and counted in
`acoustid_index_shard_failures_total`, never waited for past the timeout. That suits
lookups; an import must not decide "no match" without every shard, so `search_many(…,
require_all=True)` raises ShardUnavailableError instead of leaving a shard out. A write to a
shard that fails raises ShardUnavailableError so the caller retries (the importer's
message is redelivered); writes are idempotent (insert = replace), so retrying is safe.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import msgpack
import numpy as np
from numpy.typing import NDArray
from prometheus_client import Counter

from acoustid_stack.index import protocol
from acoustid_stack.index.interfaces import (
    Change,
    Delete,
    FpindexError,
    Insert,
    MetadataValue,
    SearchHit,
    SearchOptions,
    ShardUnavailableError,
)

log = logging.getLogger(__name__)

SHARD_FAILURES = Counter(
    "acoustid_index_shard_failures_total",
    "Requests to an index shard that failed or timed out",
    ["shard", "operation"],
)

DEFAULT_VNODES = 128
#: A search's HTTP deadline beyond the server's own `timeout`: transfer, not a hung shard.
SEARCH_MARGIN = 0.25
#: Searches in flight per shard when it must be searched query by query: a few keep the
#: shard busy, hundreds would open a connection each.
CONCURRENT_SEARCHES = 8
#: Seconds a shard that refused `_msearch` is searched query by query before it is tried again.
SINGLE_SEARCH_SECONDS = 600.0
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(values: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """splitmix64 finaliser: spreads consecutive ids uniformly over the ring."""
    with np.errstate(over="ignore"):
        z = values + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        mixed: NDArray[np.uint64] = z ^ (z >> np.uint64(31))
    return mixed


class HashRing:
    """Consistent hashing of uint32 ids onto shard URLs. Same shards → same placement,
    in every process (no dependence on Python's randomised hash)."""

    def __init__(self, shards: Sequence[str], *, vnodes: int = DEFAULT_VNODES) -> None:
        if not shards:
            raise ValueError("a hash ring needs at least one shard")
        if len(set(shards)) != len(shards):
            raise ValueError(f"duplicate shards in {list(shards)}")
        self.shards = list(shards)
        points, owners = [], []
        for index, shard in enumerate(self.shards):
            for replica in range(vnodes):
                digest = hashlib.blake2b(f"{shard}#{replica}".encode(), digest_size=8).digest()
                points.append(int.from_bytes(digest, "little"))
                owners.append(index)
        order = np.argsort(np.array(points, dtype=np.uint64), kind="stable")
        self._points = np.array(points, dtype=np.uint64)[order]
        self._owners = np.array(owners, dtype=np.intp)[order]

    def owner_indexes(self, ids: Sequence[int] | NDArray[Any]) -> NDArray[np.intp]:
        keys = _mix64(np.asarray(ids, dtype=np.uint64))
        slots = np.searchsorted(self._points, keys) % len(self._points)
        owners: NDArray[np.intp] = self._owners[slots]
        return owners

    def owner(self, doc_id: int) -> str:
        return self.shards[int(self.owner_indexes([doc_id])[0])]


class ShardedIndexClient:
    """The FingerprintIndex the api and worker use; one index name across all shards."""

    #: our index's batch search route (`search_many`); upstream fpindex servers lack it
    SEARCH_MANY = "_msearch"

    def __init__(
        self,
        *,
        shards: Sequence[str],
        index: str = "fingerprints",
        timeout: float = 1.0,
        vnodes: int = DEFAULT_VNODES,
    ) -> None:
        self.ring = HashRing([s.rstrip("/") for s in shards], vnodes=vnodes)
        self.index = index
        self.timeout = timeout
        # aiohttp rather than httpx: on a lookup's path it costs ~0.1 ms per request against
        # ~0.7 ms (measured on loopback); created on first use, inside the caller's loop
        self._http: aiohttp.ClientSession | None = None
        # shard -> until when (monotonic) to search it query by query: it answered
        # `_msearch` with a client error, as an upstream fpindex does (or our own server
        # while the index is missing, hence the retry after a while)
        self._single_search_until: dict[str, float] = {}

    @classmethod
    def from_settings(cls, settings: Any) -> ShardedIndexClient:
        """From `settings.index` (shards, name, timeout) of acoustid_stack.config."""
        return cls(
            shards=settings.index.shards,
            index=settings.index.name,
            timeout=settings.index.timeout,
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64, limit_per_host=32),
                headers={"Content-Type": protocol.MSGPACK, "Accept": protocol.MSGPACK},
            )
        return self._http

    async def _call(
        self,
        shard: str,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        content = msgpack.packb(body) if body is not None else None
        total = timeout if timeout is not None else self.timeout
        async with self._session().request(
            method,
            f"{shard}{path}",
            data=content,
            timeout=aiohttp.ClientTimeout(total=total, connect=min(total, 1.0)),
        ) as response:
            raw = await response.read()
            content_type = response.headers.get("content-type")
            if response.status >= 400:
                reason = _error_reason(raw, content_type)
                error = FpindexError(f"{method} {shard}{path}: HTTP {response.status} {reason}")
                error.status = response.status
                raise error
        if not raw:
            return {}
        data = _decode(raw, content_type)
        return data if isinstance(data, dict) else {}

    # ---- administration -------------------------------------------------------------

    async def ensure_index(self) -> None:
        """Create the index on every shard (idempotent); raises if a shard is down."""
        await self._on_all("ensure_index", "PUT", f"/{self.index}", {})

    async def _on_all(
        self, operation: str, method: str, path: str, body: Mapping[str, Any] | None
    ) -> list[dict[str, Any]]:
        replies = await asyncio.gather(
            *(self._call(shard, method, path, body) for shard in self.ring.shards),
            return_exceptions=True,
        )
        failed = [
            (shard, reply)
            for shard, reply in zip(self.ring.shards, replies, strict=True)
            if isinstance(reply, BaseException)
        ]
        for shard, error in failed:
            self._failed(shard, operation, error)
        if failed:
            raise ShardUnavailableError(
                f"{operation} failed on {', '.join(shard for shard, _ in failed)}; retry later"
            )
        return [r for r in replies if isinstance(r, dict)]

    @staticmethod
    def _failed(shard: str, operation: str, error: BaseException) -> None:
        SHARD_FAILURES.labels(shard, operation).inc()
        log.warning("index shard %s: %s failed: %s", shard, operation, error or type(error))

    def _search_failed(self, shard: str, error: BaseException, deadline: float) -> None:
        if isinstance(error, TimeoutError):
            error = TimeoutError(f"no answer in {deadline:.2f} s")
        self._failed(shard, "search", error)

    # ---- search ---------------------------------------------------------------------

    async def search(
        self, query: Sequence[int], options: SearchOptions | None = None
    ) -> list[SearchHit]:
        """Top hits over all shards; shards that fail or time out are left out."""
        options = options or SearchOptions()
        body = _search_body(options) | {"q": [int(h) for h in query]}
        replies = await asyncio.gather(
            *(self._search_on(shard, body, options) for shard in self.ring.shards)
        )
        return merge_hits([hit for hits in replies if hits for hit in hits], options)

    async def search_many(
        self,
        queries: Sequence[Sequence[int]],
        options: SearchOptions | None = None,
        *,
        require_all: bool = False,
    ) -> list[list[SearchHit]]:
        """`search` of every query (in order), one `_msearch` request per shard: the HTTP
        cost of one search instead of one per query. `options.timeout` bounds each shard's
        whole answer; more than `protocol.MAX_QUERIES` queries go in several requests. A shard
        that refuses `_msearch` (an upstream fpindex) is searched one query at a time for the
        next `SINGLE_SEARCH_SECONDS`; shards that fail or time out are left out, or with
        `require_all` raise ShardUnavailableError naming them."""
        options = options or SearchOptions()
        lists = [[int(h) for h in query] for query in queries]
        found: list[list[SearchHit]] = []
        for first in range(0, len(lists), protocol.MAX_QUERIES):
            chunk = lists[first : first + protocol.MAX_QUERIES]
            replies = await asyncio.gather(
                *(self._search_many_on(shard, chunk, options) for shard in self.ring.shards)
            )
            if require_all and (
                missing := [
                    shard
                    for shard, reply in zip(self.ring.shards, replies, strict=True)
                    if any(hits is None for hits in reply)
                ]
            ):
                raise ShardUnavailableError(
                    f"search failed on {', '.join(missing)}; the answer would be incomplete"
                )
            found += [
                merge_hits([hit for reply in replies for hit in reply[i] or ()], options)
                for i in range(len(chunk))
            ]
        return found

    async def _search_on(
        self, shard: str, body: Mapping[str, Any], options: SearchOptions
    ) -> list[SearchHit] | None:
        """One shard's hits; None (logged and counted) when it failed or timed out."""
        # the server stops at `timeout`; the margin covers transfer, not a hung shard
        deadline = options.timeout + SEARCH_MARGIN
        try:
            reply = await self._call(
                shard, "POST", f"/{self.index}/_search", body, timeout=deadline
            )
        except Exception as error:  # any shard failure degrades the search, never fails it
            self._search_failed(shard, error, deadline)
            return None
        return _hits(protocol.field(reply, "results", []))

    async def _search_many_on(
        self, shard: str, queries: list[list[int]], options: SearchOptions
    ) -> list[list[SearchHit] | None]:
        """One shard's hits per query; None (logged and counted) where it did not answer."""
        if time.monotonic() >= self._single_search_until.get(shard, 0.0):
            body = _search_body(options) | {"queries": queries}
            deadline = options.timeout + SEARCH_MARGIN
            try:
                reply = await self._call(
                    shard, "POST", f"/{self.index}/{self.SEARCH_MANY}", body, timeout=deadline
                )
                results = protocol.field(reply, "results", [])
                if len(results) != len(queries):
                    raise FpindexError(f"{len(results)} results for {len(queries)} queries")
                return [_hits(hits) for hits in results]
            except FpindexError as error:
                if not 400 <= error.status < 500:
                    self._search_failed(shard, error, deadline)
                    return [None] * len(queries)
                log.info(
                    "index shard %s refused _msearch (%s); searching it query by query",
                    shard,
                    error,
                )
                self._single_search_until[shard] = time.monotonic() + SINGLE_SEARCH_SECONDS
            except Exception as error:  # as `search`: a failed shard is left out
                self._search_failed(shard, error, deadline)
                return [None] * len(queries)
        one_by_one = asyncio.Semaphore(CONCURRENT_SEARCHES)

        async def one(query: list[int]) -> list[SearchHit] | None:
            async with one_by_one:
                body = _search_body(options) | {"q": query}
                return await self._search_on(shard, body, options)

        return list(await asyncio.gather(*(one(query) for query in queries)))

    # ---- writes ---------------------------------------------------------------------

    async def update(
        self,
        changes: Sequence[Change],
        *,
        metadata: Mapping[str, MetadataValue] | None = None,
    ) -> None:
        """Send each change to the shard owning its id (metadata goes to every shard)."""
        by_shard: dict[str, list[Change]] = defaultdict(list)
        owners = self.ring.owner_indexes([c.id for c in changes])
        for change, owner in zip(changes, owners, strict=True):
            by_shard[self.ring.shards[int(owner)]].append(change)
        targets = self.ring.shards if metadata else list(by_shard)
        replies = await asyncio.gather(
            *(
                self._call(
                    shard,
                    "POST",
                    f"/{self.index}/_update",
                    _update_body(by_shard.get(shard, []), metadata),
                )
                for shard in targets
            ),
            return_exceptions=True,
        )
        failed = [s for s, r in zip(targets, replies, strict=True) if isinstance(r, BaseException)]
        for shard, reply in zip(targets, replies, strict=True):
            if isinstance(reply, BaseException):
                self._failed(shard, "update", reply)
        if failed:
            raise ShardUnavailableError(
                f"index update failed on {', '.join(failed)}; the changes for it were not "
                "applied, retry the whole update"
            )

    async def insert(self, doc_id: int, hashes: Sequence[int]) -> None:
        await self.update([Insert(doc_id, np.asarray(hashes, dtype=np.uint32))])

    async def delete(self, doc_id: int) -> None:
        await self.update([Delete(doc_id)])


def _decode(raw: bytes, content_type: str | None) -> Any:
    return msgpack.unpackb(raw) if protocol.is_msgpack(content_type) else json.loads(raw)


def _error_reason(raw: bytes, content_type: str | None) -> str:
    """An error answer as one line: fpindex's `{"error": name}`, with our `detail` if any;
    anything else (a proxy's page) as its first 200 characters."""
    try:
        data = _decode(raw, content_type)
    except ValueError:
        data = None
    name = protocol.field(data, "error") if isinstance(data, dict) else None
    if isinstance(name, str):
        detail = protocol.field(data, "detail")
        return f"{name}: {detail}" if detail else name
    return raw[:200].decode("utf-8", "replace")


def _search_body(options: SearchOptions) -> dict[str, Any]:
    """The options of a search request; msgpack field names are single-letter prefixes, as
    upstream encodes them."""
    body: dict[str, Any] = {
        "l": options.limit,
        "t": max(1, int(options.timeout * 1000)),
        "s": options.score_pct,
    }
    if options.min_score is not None:
        body["m"] = options.min_score
    return body


def _hits(results: Sequence[Any]) -> list[SearchHit]:
    return [
        SearchHit(int(protocol.field(item, "id")), int(protocol.field(item, "score")))
        for item in results
    ]


def _update_body(
    changes: Sequence[Change], metadata: Mapping[str, MetadataValue] | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "c": [
            {"i": {"i": c.id, "h": c.hashes.tolist()}}
            if isinstance(c, Insert)
            else {"d": {"i": c.id}}
            for c in changes
        ]
    }
    if metadata:
        body["m"] = dict(metadata)
    return body


def merge_hits(hits: Sequence[SearchHit], options: SearchOptions) -> list[SearchHit]:
    """Shards' hits → the global answer: best score per id, `score_pct` of the top, limit."""
    best: dict[int, int] = {}
    for hit in hits:
        if hit.score > best.get(hit.id, 0):
            best[hit.id] = hit.score
    if not best:
        return []
    top = max(best.values())
    ranked = sorted(
        (SearchHit(i, s) for i, s in best.items() if s * 100 >= top * options.score_pct),
        key=lambda h: (-h.score, h.id),
    )
    return ranked[: options.limit]
