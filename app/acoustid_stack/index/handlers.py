"""HTTP handlers of the fpindex API (reference §6.2).

Every error is a JSON body `{"error": "..."}` with a 4xx/5xx status: FpindexError
subclasses carry their status, anything else is a logged 500.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tarfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from acoustid_stack.index import protocol
from acoustid_stack.index.interfaces import BadRequestError, Delete, FpindexError, Insert
from acoustid_stack.index.merge import MergeScheduler
from acoustid_stack.index.metrics import IndexMetrics
from acoustid_stack.index.registry import IndexRegistry
from acoustid_stack.index.store import IndexStore

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024
#: a `_msearch` request gives other requests a turn after this many seconds of searching
SEARCH_SLICE = 0.002
_CHUNK = 1024 * 1024


class Handlers:
    def __init__(
        self, *, registry: IndexRegistry, metrics: IndexMetrics, scheduler: MergeScheduler
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.scheduler = scheduler

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
    async def _body(request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise PayloadTooLargeError(f"body larger than {MAX_BODY_BYTES} bytes")
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise PayloadTooLargeError(f"body larger than {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
        return protocol.decode_body(b"".join(chunks), request.headers.get("content-type"))

    @staticmethod
    def _reply(request: Request, data: dict[str, Any], status: int = 200) -> Response:
        accept = request.headers.get("accept")
        as_msgpack = protocol.is_msgpack(accept) or (
            (not accept or accept == "*/*")
            and protocol.is_msgpack(request.headers.get("content-type"))
        )
        return Response(
            protocol.encode(data, as_msgpack=as_msgpack),
            status_code=status,
            media_type=protocol.MSGPACK if as_msgpack else "application/json",
        )

    def _store(self, request: Request) -> IndexStore:
        return self.registry.get(request.path_params["index"])

    # ---- monitoring -----------------------------------------------------------------

    async def health(self, request: Request) -> Response:
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
        started = time.perf_counter()
        store = self._store(request)
        parsed = protocol.parse_search(await self._body(request))
        hits = store.search(parsed.query, parsed.options)
        response = self._reply(request, {"results": [{"id": h.id, "score": h.score} for h in hits]})
        self.metrics.search_duration.labels(store.path.name).observe(time.perf_counter() - started)
        return response

    async def search_many(self, request: Request) -> Response:
        """Our extension: many `_search` queries in one request, `{"results": [[hits], …]}`
        in query order. `timeout` bounds the whole request; a query reached after it is
        answered from the segments one search has time for, as `_search` answers."""
        store = self._store(request)
        parsed = protocol.parse_search_many(await self._body(request))
        deadline = time.monotonic() + parsed.options.timeout
        results = []
        paused = time.monotonic()
        for query in parsed.queries:
            started = time.perf_counter()
            left = max(0.0, deadline - time.monotonic())
            hits = store.search(query, replace(parsed.options, timeout=left))
            results.append([{"id": h.id, "score": h.score} for h in hits])
            self.metrics.search_duration.labels(store.path.name).observe(
                time.perf_counter() - started
            )
            if time.monotonic() - paused > SEARCH_SLICE:
                # searches run on the event loop: let lookups in between
                await asyncio.sleep(0)
                paused = time.monotonic()
        return self._reply(request, {"results": results})

    async def update(self, request: Request) -> Response:
        store = self._store(request)
        body = await self._body(request)
        version = await run_in_threadpool(self._apply_update, store, body)
        return self._reply(request, {"version": version})

    def _apply_update(self, store: IndexStore, body: dict[str, Any]) -> int:
        started = time.perf_counter()
        parsed = protocol.parse_update(body)
        version = store.update(
            parsed.changes, metadata=parsed.metadata, expected_version=parsed.expected_version
        )
        self.metrics.insert_duration.labels(store.path.name).observe(time.perf_counter() - started)
        self.scheduler.wake()
        return version

    # ---- indexes --------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        name = request.path_params["index"]
        if request.method == "PUT":
            body = await self._body(request)
            generation = protocol.field(body, "generation", 1)
            if type(generation) is not int or generation < 0:
                raise BadRequestError("generation must be a non-negative integer")
            store = await run_in_threadpool(
                self.registry.create,
                name,
                generation=generation,
                expect_new=bool(protocol.field(body, "expect_does_not_exist", False)),
            )
            return self._reply(request, {"version": store.version, "ready": store.ready})
        if request.method == "DELETE":
            body = await self._body(request)
            expect = bool(protocol.field(body, "expect_exists", False))
            await run_in_threadpool(self.registry.delete, name, expect_exists=expect)
            return self._reply(request, {})
        store = self.registry.get(name)
        if request.method == "HEAD":
            return Response(status_code=200 if store.ready else 503)
        info = store.info()
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
        if request.method == "PUT":
            body = await self._body(request)
            change = Insert(doc_id, protocol.hashes(protocol.field(body, "hashes")))
            version = await run_in_threadpool(self._update_one, store, change)
        else:
            version = await run_in_threadpool(self._update_one, store, Delete(doc_id))
        return self._reply(request, {"version": version})

    def _update_one(self, store: IndexStore, change: Any) -> int:
        version = store.update([change])
        self.scheduler.wake()
        return version

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


class PayloadTooLargeError(FpindexError):
    status = 413


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
    if isinstance(exc, FpindexError):
        status = exc.status
        message = str(exc)
    elif isinstance(exc, HTTPException):
        status = exc.status_code
        message = exc.detail
    else:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        status, message = 500, "internal error"
    if request.method == "HEAD":
        return Response(status_code=status)
    return Response(
        protocol.encode({"error": message}, as_msgpack=False),
        status_code=status,
        media_type="application/json",
    )
