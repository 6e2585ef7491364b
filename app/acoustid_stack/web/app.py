"""The website's Starlette app: connections opened at start-up, closed at shutdown."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from nats.errors import Error as NatsError
from starlette.applications import Starlette
from starlette.templating import Jinja2Templates

from acoustid_stack.config import Settings
from acoustid_stack.redis_client import connect_redis
from acoustid_stack.submissions.databases import open_databases
from acoustid_stack.submissions.stream import connect_nats
from acoustid_stack.web.views import routes

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"


def create_app(settings: Settings) -> Starlette:
    """The site for `settings`. NATS being down at start leaves the site up (status shows it)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state = app.state
        state.settings = settings
        state.templates = Jinja2Templates(directory=TEMPLATES)
        state.databases = open_databases(settings.database, pool_size=2)
        state.redis = connect_redis(settings.redis, timeout=1.0)
        state.http = httpx.AsyncClient(timeout=1.0)
        nc = None
        try:
            nc = await connect_nats(settings.nats)
            state.js = nc.jetstream()
        except (NatsError, OSError) as exc:
            logger.warning("NATS unavailable, the status page will say so: %s", exc)
            state.js = None
        try:
            yield
        finally:
            if nc is not None:
                await nc.close()
            await state.http.aclose()
            await state.redis.aclose()
            await state.databases.dispose()

    return Starlette(routes=routes, lifespan=lifespan)


def serve(settings: Settings) -> None:
    """`acoustid-stack run web`: uvicorn on `[web] host:port` with `[web] workers`."""
    import uvicorn  # noqa: PLC0415

    uvicorn.run(
        create_app(settings),
        host=settings.web.host,
        port=settings.web.port,
        log_config=None,  # our logging setup, not uvicorn's
    )
