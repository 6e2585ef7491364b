"""The index server: one ASGI app over an `IndexRegistry`, run by uvicorn.

Start-up answers HTTP at once; indexes load (segments mapped, WAL replayed) in a
background thread and answer 503 until they are ready, and so does `/_health` until all
of them are (upstream fpindex answers nothing until then). Searches run on a pool of
`search_threads` threads (default: one per usable CPU). Shutdown (SIGTERM) stops
accepting, lets requests in flight finish for at most SHUTDOWN_GRACE seconds, then flushes
memory segments so the next start replays little.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from acoustid_stack.http_limits import BoundedHttpToolsProtocol
from acoustid_stack.index.handlers import Handlers, error_response
from acoustid_stack.index.interfaces import FpindexError
from acoustid_stack.index.merge import MergePolicy, MergeScheduler
from acoustid_stack.index.metrics import IndexMetrics
from acoustid_stack.index.registry import IndexRegistry

log = logging.getLogger(__name__)

DEFAULT_PORT = 6081
#: seconds requests in flight get to finish after SIGTERM (a search stops at its timeout)
SHUTDOWN_GRACE = 15
#: connections and requests held at once; past it new requests get 503. The api's workers
#: keep a few pooled connections each, so this only bounds a flood.
MAX_CONNECTIONS = 1000


def create_app(
    data_dir: Path,
    *,
    create: Sequence[str] = (),
    policy: MergePolicy | None = None,
    search_threads: int | None = None,
) -> Starlette:
    """The fpindex ASGI app serving the indexes under `data_dir`; `create` ensures names."""
    metrics = IndexMetrics()
    registry = IndexRegistry(data_dir, policy=policy, on_merge=metrics.maintained)
    registry.clear_snapshots()
    metrics.watch(registry.items)
    scheduler = MergeScheduler(registry.stores)
    searches = ThreadPoolExecutor(
        max_workers=search_threads or usable_cpus(), thread_name_prefix="fpindex-search"
    )
    handlers = Handlers(registry=registry, metrics=metrics, scheduler=scheduler, searches=searches)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pending = registry.discover()

        def load() -> None:
            registry.load(pending)
            for name in create:
                registry.create(name)
            # the objects alive now (modules, classes, loaded indexes) live as long as the
            # server: frozen, a full collection no longer walks them (walking them took
            # ~28 ms here, a pause for whichever request triggered it)
            gc.collect()
            gc.freeze()
            registry.loaded.set()
            scheduler.start()

        loader = threading.Thread(target=load, name="fpindex-loader", daemon=True)
        loader.start()
        try:
            yield
        finally:
            loader.join()
            searches.shutdown(wait=True, cancel_futures=True)
            scheduler.stop()
            registry.close()

    app = Starlette(
        routes=handlers.routes(),
        lifespan=lifespan,
        exception_handlers={
            FpindexError: error_response,
            Exception: error_response,
            404: error_response,
            405: error_response,
        },
    )
    app.state.registry = registry
    return app


def usable_cpus() -> int:
    """CPUs this process may run on (a container's cpuset, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def serve(data_dir: Path, *, host: str, port: int, create: Sequence[str] = ()) -> None:
    app = create_app(data_dir, create=create)
    log.info("index server on http://%s:%d, data in %s", host, port, data_dir)
    uvicorn.run(
        app,
        host=host,
        port=port,
        http=BoundedHttpToolsProtocol,
        limit_concurrency=MAX_CONNECTIONS,
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
    )
