"""HTTP handlers of the fpindex API (reference §6.2).

Errors answer as upstream fpindex does: `{"error": "<Name>"}` (MessagePack `{"e": …}`) in
the negotiated format, with the status of the name (interfaces.FpindexError); our
`detail` key adds the human sentence. Anything unexpected is a logged 500 InternalError.

Nothing slow runs on the event loop, so `/_health`, metrics and writes answer while
searches run: searches (and `_msearch`) run on a bounded pool of search threads, where
NumPy's array work releases the GIL; writes (WAL fsync), snapshots and index info run on
the separate default thread pool, serialised by the store's own locks.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tarfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from acoustid_stack.index import protocol
from acoustid_stack.index.interfaces import (
    Change,
    Delete,
    FpindexError,
    Insert,
    SearchHit,
    SearchOptions,
    SearchTimeoutError,
)
from acoustid_stack.index.merge import MergeScheduler
from acoustid_stack.index.metrics import IndexMetrics
from acoustid_stack.index.registry import IndexRegistry
from acoustid_stack.index.segment import U32
from acoustid_stack.index.store import IndexStore, SearchStats

log = logging.getLogger(__name__)

#: the body cap of a search, _msearch or document request. Decoding multiplies a body's size
#: (a 32 MB JSON search took the server from 117 to 550 MB RSS); 1,000 queries of 120 terms
#: in JSON are ~1.3 MB, so 8 MiB leaves room without letting one request bloat the server.
MAX_BODY_BYTES = 8 * 1024 * 1024
#: `_update` carries whole fingerprints (a rebuild batch of 1,000 long tracks is ~12 MB of
#: MessagePack), so it keeps a larger cap; the writers are our own workers and commands.
MAX_UPDATE_BODY_BYTES = 64 * 1024 * 1024
_CHUNK = 1024 * 1024
#: names of the errors Starlette raises itself (no route, wrong method)
_HTTP_ERROR_NAMES = {404: "NotFound", 405: "MethodNotAllowed"}

T = TypeVar("T")


class PayloadTooLargeError(FpindexError):
    status = 413
    name = "PayloadTooLarge"


class Handlers:
    def __init__(
        self,
        *,
        registry: IndexRegistry,
        metrics: IndexMetrics,
        scheduler: MergeScheduler,
        searches: ThreadPoolExecutor,
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.scheduler = scheduler
        self.searches = searches

    def routes(self) -> list[Route]:
        return [
            Route("/_health", self.health, methods=["GET"]),
            Route("/_metrics", self.prometheus, methods=["GET"]),
            Route("/metrics", self.prometheus, methods=["GET"]),
            Route("/{index}/_health", self.index_health, methods=["GET"]),
            Route("/{index}/_search", self.search, methods=["POST"]),
            Route("/{index}/_msearch", self.search_many, methods=["POST"]),
            Route("/{index}/_update", self.update, methods=["POST"]),
            Route("/{index}/_status", self.status, methods=["GET"]),
            Route("/{index}/_snapshot", self.snapshot, methods=["GET"]),
            Route("/{index}/{doc_id}", self.document, methods=["GET", "HEAD", "PUT", "DELETE"]),
            Route("/{index}", self.index, methods=["GET", "HEAD", "PUT", "DELETE"]),
        ]

    # ---- helpers --------------------------------------------------------------------

    @staticmethod
    async def _raw_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
        """The body, refused past `limit` bytes before any decoding; its format is checked
        before it is read."""
        protocol.body_is_msgpack(request.headers.get("content-type"))
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLargeError(f"body larger than {limit} bytes")
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(f"body larger than {limit} bytes")
            chunks.append(chunk)
        if not size:
            return b""
        return b"".join(chunks)

    @classmethod
    async def _body(cls, request: Request) -> dict[str, Any]:
        """The decoded body of a small request (index and document routes)."""
        return protocol.decode_body(
            await cls._raw_body(request), request.headers.get("content-type")
        )

    @staticmethod
    def _decoder(request: Request, raw: bytes) -> Callable[[], dict[str, Any]]:
        """Decoding of a large body, for the thread that handles it (not the loop)."""
        content_type = request.headers.get("content-type")
        return lambda: protocol.decode_body(raw, content_type)

    @staticmethod
    def _reply(request: Request, data: dict[str, Any], status: int = 200) -> Response:
        as_msgpack = reply_is_msgpack(request)
        return Response(
            protocol.encode(data, as_msgpack=as_msgpack),
            status_code=status,
            media_type=protocol.MSGPACK if as_msgpack else protocol.JSON,
        )

    def _store(self, request: Request) -> IndexStore:
        return self.registry.get(request.path_params["index"])

    async def _search_thread(self, work: Callable[[float], T]) -> T:
        """Run `work(queued)` on a search thread; `queued` is when it was submitted."""
        queued = time.monotonic()
        return await asyncio.get_running_loop().run_in_executor(self.searches, work, queued)

    # ---- monitoring -----------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        """200 once every index is loaded and can serve (upstream answers nothing at all
        before that); a corrupt index does not hold it back, see IndexRegistry.waiting."""
        if not self.registry.loaded.is_set():
            return PlainTextResponse("LOADING\n", status_code=503)
        waiting = self.registry.waiting()
        if waiting:
            return PlainTextResponse(f"LOADING {' '.join(waiting)}\n", status_code=503)
        return PlainTextResponse("OK\n")

    async def prometheus(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def index_health(self, request: Request) -> Response:
        store = self._store(request)
        if store.corruption is not None:
            return PlainTextResponse("CORRUPT\n", status_code=503)
        if not store.ready:
            return PlainTextResponse("LOADING\n", status_code=503)
        return PlainTextResponse("OK\n")

    # ---- search and updates ---------------------------------------------------------

    async def search(self, request: Request) -> Response:
        store = self._store(request)
        decode = self._decoder(request, await self._raw_body(request))

        def run(queued: float) -> list[SearchHit]:
            parsed = protocol.parse_search(decode())
            options = _time_left(parsed.options, queued)
            return self._timed_search(store, parsed.query, options)

        hits = await self._search_thread(run)
        return self._reply(request, {"results": [{"id": h.id, "score": h.score} for h in hits]})

    def _timed_search(
        self, store: IndexStore, query: U32, options: SearchOptions
    ) -> list[SearchHit]:
        started = time.perf_counter()
        stats = SearchStats()
        hits = store.search(query, options, stats)
        seconds = time.perf_counter() - started
        self.metrics.searched(store.path.name, len(hits), seconds, stats.postings_read)
        return hits

    async def search_many(self, request: Request) -> Response:
        """Our extension: many `_search` queries in one request, `{"results": [[hits], …]}`
        in query order. `timeout` bounds the whole request: past it the request answers 503
        SearchTimeout, as `_search` does, never a partial result."""
        store = self._store(request)
        decode = self._decoder(request, await self._raw_body(request))

        def run(queued: float) -> list[list[dict[str, int]]]:
            parsed = protocol.parse_search_many(decode())
            options = _time_left(parsed.options, queued)
            deadline = time.monotonic() + options.timeout
            results = []
            for query in parsed.queries:
                left = max(0.0, deadline - time.monotonic())
                hits = self._timed_search(store, query, replace(options, timeout=left))
                results.append([{"id": h.id, "score": h.score} for h in hits])
            return results

        results = await self._search_thread(run)
        return self._reply(request, {"results": results})

    async def update(self, request: Request) -> Response:
        store = self._store(request)
        decode = self._decoder(request, await self._raw_body(request, MAX_UPDATE_BODY_BYTES))

        def run() -> int:
            parsed = protocol.parse_update(decode())
            return self._apply(
                store,
                parsed.changes,
                metadata=parsed.metadata,
                expected_version=parsed.expected_version,
            )

        version = await run_in_threadpool(run)
        return self._reply(request, {"version": version})

    def _apply(self, store: IndexStore, changes: list[Change], **options: Any) -> int:
        started = time.perf_counter()
        version = store.update(changes, **options)
        name = store.path.name
        self.metrics.insert_duration.labels(name).observe(time.perf_counter() - started)
        self.metrics.updates.labels(name).inc(len(changes))
        self.scheduler.wake()
        return version

    # ---- indexes --------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        name = request.path_params["index"]
        if request.method == "PUT":
            create = protocol.parse_create(await self._body(request))
            store = await run_in_threadpool(
                self.registry.create,
                name,
                generation=create.generation,
                expect_new=create.expect_does_not_exist,
            )
            return self._reply(
                request,
                {"version": store.version, "ready": store.ready, "generation": store.generation},
            )
        if request.method == "DELETE":
            expect = protocol.parse_delete(await self._body(request))
            deleted = await run_in_threadpool(self.registry.delete, name, expect_exists=expect)
            return self._reply(request, {"deleted": deleted})
        store = self.registry.get(name)
        if request.method == "HEAD":
            return Response(status_code=200 if store.ready else 503)
        info = await run_in_threadpool(store.info)
        return self._reply(
            request,
            {
                "version": info.version,
                "metadata": info.metadata,
                "stats": {
                    "min_doc_id": info.min_doc_id,
                    "max_doc_id": info.max_doc_id,
                    "num_segments": info.num_segments,
                    "num_docs": info.num_docs,
                },
            },
        )

    async def status(self, request: Request) -> Response:
        store = self._store(request)
        store.require_ready()
        return self._reply(
            request,
            {
                "generation": store.generation,
                "version": store.version,
                "file_version": store.checkpoint_version,
            },
        )

    async def document(self, request: Request) -> Response:
        store = self._store(request)
        doc_id = protocol.parse_doc_id(request.path_params["doc_id"])
        if request.method in ("GET", "HEAD"):
            try:
                version = store.document_version(doc_id)
            except FpindexError:
                if request.method == "HEAD":
                    return Response(status_code=404)
                raise
            if request.method == "HEAD":
                return Response(status_code=200)
            return self._reply(request, {"version": version})
        change: Change
        if request.method == "PUT":
            body = await self._body(request)
            change = Insert(doc_id, protocol.hashes(protocol.field(body, "hashes")))
        else:
            change = Delete(doc_id)
        await run_in_threadpool(self._apply, store, [change])
        return self._reply(request, {})  # as upstream: the version is in GET /:index/:id

    # ---- snapshots ------------------------------------------------------------------

    async def snapshot(self, request: Request) -> Response:
        store = self._store(request)
        directory = self.registry.snapshot_dir()
        try:
            names = await run_in_threadpool(store.snapshot, directory)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return StreamingResponse(
            _tar_stream(directory, names),
            media_type="application/x-tar",
            headers={"content-disposition": f'attachment; filename="{store.path.name}.tar"'},
        )


def _time_left(options: SearchOptions, queued: float) -> SearchOptions:
    """`options` with the time spent waiting for a search thread taken off its timeout; a
    search still queued when its timeout has passed is not run for nobody: 503
    SearchTimeout, which a client treats as a shard that did not answer."""
    waited = time.monotonic() - queued
    if waited >= options.timeout:
        raise SearchTimeoutError(
            f"waited {waited:.3f} s for a search thread, the timeout is {options.timeout:.3f} s"
        )
    return replace(options, timeout=options.timeout - waited)


def reply_is_msgpack(request: Request) -> bool:
    headers = request.headers
    has_body = headers.get("content-length", "0") not in ("", "0") or (
        "transfer-encoding" in headers
    )
    return protocol.reply_is_msgpack(
        headers.get("accept"), headers.get("content-type"), has_body=has_body
    )


def _tar_stream(directory: Path, names: list[str]) -> Iterator[bytes]:
    """A tar archive of `names` under `directory`, streamed; removes `directory` at the end.

    Written by hand rather than with tarfile.open(mode="w|") so that a large segment is
    sent in chunks instead of being buffered whole.
    """
    try:
        for name in names:
            path = directory / name
            info = tarfile.TarInfo(name)
            stat = path.stat()
            info.size = stat.st_size
            info.mtime = int(stat.st_mtime)
            info.mode = 0o644
            yield info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
            with path.open("rb") as f:
                while chunk := f.read(_CHUNK):
                    yield chunk
            if info.size % tarfile.BLOCKSIZE:
                yield b"\0" * (tarfile.BLOCKSIZE - info.size % tarfile.BLOCKSIZE)
        yield b"\0" * (2 * tarfile.BLOCKSIZE)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def error_response(request: Request, exc: Exception) -> Response:
    detail: str | None
    if isinstance(exc, FpindexError):
        status, name, detail = exc.status, exc.name, str(exc)
    elif isinstance(exc, HTTPException):
        status = exc.status_code
        name = _HTTP_ERROR_NAMES.get(status, "BadRequest" if status < 500 else "InternalError")
        detail = exc.detail
    else:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        status, name, detail = 500, FpindexError.name, None
    if request.method == "HEAD":
        return Response(status_code=status)
    body: dict[str, Any] = {"error": name}
    if detail:
        body["detail"] = detail
    as_msgpack = reply_is_msgpack(request)
    return Response(
        protocol.encode(body, as_msgpack=as_msgpack),
        status_code=status,
        media_type=protocol.MSGPACK if as_msgpack else protocol.JSON,
    )
