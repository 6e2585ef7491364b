"""The index server: one ASGI app over an `IndexRegistry`, run by uvicorn.

Start-up answers HTTP at once; indexes load (segments mapped, WAL replayed) in a
background thread and answer 503 until they are ready. Shutdown flushes memory
segments so the next start replays little.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from acoustid_stack.index.handlers import Handlers, error_response
from acoustid_stack.index.interfaces import FpindexError
from acoustid_stack.index.merge import MergePolicy, MergeScheduler
from acoustid_stack.index.metrics import IndexMetrics
from acoustid_stack.index.registry import IndexRegistry

log = logging.getLogger(__name__)

DEFAULT_PORT = 6081


def create_app(
    data_dir: Path, *, create: Sequence[str] = (), policy: MergePolicy | None = None
) -> Starlette:
    """The fpindex ASGI app serving the indexes under `data_dir`; `create` ensures names."""
    metrics = IndexMetrics()
    registry = IndexRegistry(
        data_dir,
        policy=policy,
        on_merge=lambda name, kind, seconds: metrics.merge_duration.labels(name, kind).observe(
            seconds
        ),
    )
    registry.clear_snapshots()
    metrics.watch(registry.items)
    scheduler = MergeScheduler(registry.stores)
    handlers = Handlers(registry=registry, metrics=metrics, scheduler=scheduler)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pending = registry.discover()

        def load() -> None:
            registry.load(pending)
            for name in create:
                registry.create(name)
            scheduler.start()

        loader = threading.Thread(target=load, name="fpindex-loader", daemon=True)
        loader.start()
        try:
            yield
        finally:
            loader.join()
            scheduler.stop()
            registry.close()

    return Starlette(
        routes=handlers.routes(),
        lifespan=lifespan,
        exception_handlers={
            FpindexError: error_response,
            Exception: error_response,
            404: error_response,
            405: error_response,
        },
    )


def serve(data_dir: Path, *, host: str, port: int, create: Sequence[str] = ()) -> None:
    app = create_app(data_dir, create=create)
    log.info("index server on http://%s:%d, data in %s", host, port, data_dir)
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning")
