"""The website's Starlette app: connections opened at start-up, closed at shutdown."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.templating import Jinja2Templates

from acoustid_stack.config import Settings, load_settings
from acoustid_stack.config.loader import CONFIG_ENV
from acoustid_stack.http_limits import BoundedHttpToolsProtocol
from acoustid_stack.logging_setup import configure_logging
from acoustid_stack.proxies import TrustedProxies
from acoustid_stack.redis_client import connect_redis
from acoustid_stack.response_headers import ResponseHeaders
from acoustid_stack.sentry_setup import init_sentry
from acoustid_stack.sizing import PROCESS_CONNECTIONS
from acoustid_stack.submissions.connection import ServiceConnection
from acoustid_stack.submissions.databases import open_databases
from acoustid_stack.web import status
from acoustid_stack.web.headers import SECURITY_HEADERS
from acoustid_stack.web.views import routes

APP_FACTORY = "acoustid_stack.web.app:create_app_from_env"
TEMPLATES = Path(__file__).parent / "templates"
#: seconds the start waits for NATS; after that it connects in the background
NATS_START_WAIT = 2.0


def create_app(settings: Settings) -> Starlette:
    """The site for `settings`. NATS being down (at start or later) leaves the site up; the
    status page says so until the connection is back."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state = app.state
        state.settings = settings
        state.proxies = TrustedProxies(settings.web.trusted_proxies)
        state.templates = Jinja2Templates(directory=TEMPLATES)
        state.templates.env.globals["api_docs_url"] = f"{api_url(settings)}/v2/docs"
        state.databases = open_databases(
            settings.database, pool_size=PROCESS_CONNECTIONS["web"].engine
        )
        state.redis = connect_redis(settings.redis, timeout=1.0)
        state.http = httpx.AsyncClient(timeout=1.0)
        state.nats = ServiceConnection(settings=settings.nats)
        state.status_figures = status.Cached(
            lambda: status.page_figures(
                settings=settings,
                databases=state.databases,
                redis=state.redis,
                nats=state.nats,
                http=state.http,
            ),
            settings.web.status_cache_seconds,
        )
        try:
            await state.nats.start(wait=NATS_START_WAIT)
            yield
        finally:
            await state.nats.close()
            await state.http.aclose()
            await state.redis.aclose()
            await state.databases.dispose()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(ResponseHeaders, headers=SECURITY_HEADERS)],
    )
    # Starlette answers "/stats/" with a redirect to an absolute URL built from the Host
    # header, which a forged Host turns into a redirect to another site
    app.router.redirect_slashes = False
    return app


def api_url(settings: Settings) -> str:
    """The API's public URL the pages link to: `[web] api_url`, else where the api listens
    (on this machine's loopback when it listens on every address)."""
    if settings.web.api_url:
        return settings.web.api_url.rstrip("/")
    # wildcard addresses looked up, not bound
    loopback = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(settings.api.host)  # nosec B104
    host = loopback or settings.api.host
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.api.port}"


def create_app_from_env() -> Starlette:
    """uvicorn's factory in each worker: settings from ACOUSTID_CONFIG and ACOUSTID_* env."""
    settings = load_settings()
    configure_logging(settings)
    init_sentry(settings, process="web")
    return create_app(settings)


def serve(settings: Settings, *, config_path: str | None) -> None:
    """`acoustid-stack run web`: uvicorn on `[web] host:port` with `[web] workers` processes,
    each building the site from the same configuration."""
    import uvicorn  # noqa: PLC0415

    if config_path:
        # worker processes load settings themselves, from the same file
        os.environ[CONFIG_ENV] = config_path
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=settings.web.host,
        port=settings.web.port,
        workers=settings.web.workers,
        http=BoundedHttpToolsProtocol,
        limit_concurrency=settings.web.limit_concurrency,
        timeout_keep_alive=settings.web.timeout_keep_alive,
        log_config=None,  # our logging setup, not uvicorn's
        # forwarded headers count from [web] trusted_proxies only, in the app (proxies.py)
        proxy_headers=False,
    )
