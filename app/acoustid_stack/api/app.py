"""The api's ASGI app: `create_app(settings)` wires every part; `create_app_from_env` is what
`acoustid-stack run api` gives uvicorn in each worker process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route

from acoustid_stack.api import docs, legacy, openapi
from acoustid_stack.api.auth import ApiKeys
from acoustid_stack.api.catalog import Catalog
from acoustid_stack.api.endpoint import EndpointRunner
from acoustid_stack.api.health import HealthChecks
from acoustid_stack.api.lookup import LookupHandler
from acoustid_stack.api.metadata import CachedExistence, SubmittedMetadata
from acoustid_stack.api.metrics import ApiMetrics
from acoustid_stack.api.middleware import (
    CORS_HEADERS,
    GzipRequestMiddleware,
    PathCleanupMiddleware,
)
from acoustid_stack.api.musicbrainz_users import CreateMusicBrainzHandler
from acoustid_stack.api.ratelimit import RateLimiter
from acoustid_stack.api.stats import LookupStats
from acoustid_stack.api.submit import SubmissionPublisher, SubmissionStatusHandler, SubmitHandler
from acoustid_stack.api.tracks import FingerprintHandler, ListByMbidHandler, ListByPuidHandler
from acoustid_stack.api.user import CreateAnonymousHandler, UserLookupHandler
from acoustid_stack.config import Settings, load_settings
from acoustid_stack.db.reader import Reader
from acoustid_stack.index.client import ShardedIndexClient
from acoustid_stack.index.interfaces import FingerprintIndex
from acoustid_stack.logging_setup import configure_logging
from acoustid_stack.matching import DatabaseCandidates, Matcher
from acoustid_stack.proxies import TrustedProxies
from acoustid_stack.redis_client import connect_redis
from acoustid_stack.response_headers import ResponseHeaders
from acoustid_stack.sentry_setup import init_sentry
from acoustid_stack.sizing import PROCESS_CONNECTIONS
from acoustid_stack.submissions.databases import Databases, open_databases

#: Upstream accepts any method on every route; clients use GET and POST, browsers may send
#: OPTIONS. The API defines no other, so others are 405 (Starlette's, with `Allow`).
METHODS = ["GET", "HEAD", "POST", "OPTIONS"]
#: A Redis that does not answer within this time is treated as down (rate limits fail open).
REDIS_TIMEOUT_SECONDS = 0.5


@dataclass
class Resources:
    """Connections one api process holds: databases (rw) for requests, engines of their own
    for the health checks (`health` on the rw databases, `health_ro` on the read-only ones,
    the same when no replica is configured), Redis, index, NATS; `fingerprint_reader` serves
    the hot reads of lookups (the read-only fingerprint database)."""

    databases: Databases
    health: Databases
    health_ro: Databases
    fingerprint_reader: Reader
    redis: Redis
    index: FingerprintIndex
    publisher: SubmissionPublisher
    lookup_stats: LookupStats

    @classmethod
    def open(cls, settings: Settings, *, index: FingerprintIndex | None = None) -> Resources:
        """Everything connects lazily (NATS: in the background from the lifespan's start), so
        this never blocks nor fails on a down service."""
        pools = PROCESS_CONNECTIONS["api"]
        # No retries: redis-py's default retries with backoff for seconds, which would
        # turn a Redis outage into seconds of latency on every request, not failing open.
        redis = connect_redis(settings.redis, timeout=REDIS_TIMEOUT_SECONDS, retries=0)
        rw = settings.database
        ro = replace(rw, app=rw.app_ro, fingerprint=rw.fingerprint_ro, ingest=rw.ingest_ro)
        # Probes get connections of their own: a saturated api still answers them in time
        # instead of queueing them behind its requests for a pooled connection.
        health = open_databases(rw, pool_size=pools.health_engine)
        return cls(
            databases=open_databases(rw, pool_size=pools.engine),
            health=health,
            health_ro=health if ro == rw else open_databases(ro, pool_size=pools.health_engine),
            fingerprint_reader=Reader(rw.fingerprint_ro, max_size=pools.reader),
            redis=redis,
            index=index or ShardedIndexClient.from_settings(settings),
            publisher=SubmissionPublisher(settings=settings.nats),
            lookup_stats=LookupStats(redis=redis, key_prefix=settings.redis.key_prefix),
        )

    async def close(self) -> None:
        await self.publisher.close()
        await self.index.close()
        await self.fingerprint_reader.close()
        await self.redis.aclose()
        await self.databases.dispose()
        await self.health.dispose()
        if self.health_ro is not self.health:
            await self.health_ro.dispose()


def create_app(
    settings: Settings, *, index: FingerprintIndex | None = None, metrics: ApiMetrics | None = None
) -> Starlette:
    """The api app. `index` replaces the sharded client of `settings.index` (e.g. upstream's)."""
    resources = Resources.open(settings, index=index)
    metrics = metrics or ApiMetrics()
    runner = EndpointRunner(
        limiter=RateLimiter(
            redis=resources.redis,
            settings=settings.rate_limit,
            key_prefix=settings.redis.key_prefix,
        ),
        metrics=metrics,
        cluster_secret=settings.cluster.secret,
        proxies=TrustedProxies(settings.api.trusted_proxies),
    )
    keys = ApiKeys(app_db=resources.databases.app, website_secret=settings.website.secret)
    routes = [
        *health_routes(settings, resources),
        *lookup_routes(settings, resources, runner, keys, metrics),
        *submission_routes(resources, runner, keys, metrics),
        *track_routes(resources, runner),
        *user_routes(resources, runner, keys),
        Route("/lookup", legacy.not_supported, methods=METHODS),
        Route("/submit", legacy.not_supported, methods=METHODS),
        Route("/", docs.start, methods=["GET", "HEAD"]),
        Route("/v2", docs.start, methods=["GET", "HEAD"]),  # "/v2/": trailing slash cut
        Route("/v2/docs", docs.reference, methods=["GET", "HEAD"]),
        Route("/v2/openapi.json", openapi.endpoint, methods=["GET", "HEAD"]),
        Route("/metrics", metrics.endpoint, methods=["GET", "HEAD"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        counting = asyncio.create_task(resources.lookup_stats.run())
        try:
            await resources.publisher.start()
            yield
        finally:
            resources.lookup_stats.stop()
            await counting  # the last counts reach Redis before it is closed
            await resources.close()

    return Starlette(
        routes=routes,
        middleware=[
            Middleware(ResponseHeaders, headers=CORS_HEADERS),
            Middleware(PathCleanupMiddleware),
            Middleware(GzipRequestMiddleware),
        ],
        lifespan=lifespan,
    )


def create_app_from_env() -> Starlette:
    """uvicorn's factory in each worker: settings from ACOUSTID_CONFIG and ACOUSTID_* env."""
    settings = load_settings()
    configure_logging(settings)
    init_sentry(settings, process="api")
    if "httpx" not in settings.logging.levels:
        # httpx logs every index search at INFO: a line per lookup, and measurable CPU
        logging.getLogger("httpx").setLevel(logging.WARNING)
    return create_app(settings)


def health_routes(settings: Settings, resources: Resources) -> list[BaseRoute]:
    rw, ro = resources.health, resources.health_ro
    checks = HealthChecks(
        shutdown_file=settings.website.shutdown_file,
        is_master=settings.cluster.role == "master",
        writable=[rw.app, rw.fingerprint, rw.ingest],
        readable=[ro.app, ro.fingerprint, ro.ingest],
    )
    return [
        Route("/_health", checks.health, methods=METHODS),
        Route("/_health_ro", checks.health_ro, methods=METHODS),
        Route("/_health_docker", checks.health_docker, methods=METHODS),
    ]


def lookup_routes(
    settings: Settings,
    resources: Resources,
    runner: EndpointRunner,
    keys: ApiKeys,
    metrics: ApiMetrics,
) -> list[BaseRoute]:
    matcher = Matcher(
        index=resources.index,
        candidates=DatabaseCandidates(reader=resources.fingerprint_reader),
        search_timeout=settings.website.search_timeout,
    )
    handler = LookupHandler(
        keys=keys,
        matcher=matcher,
        catalog=Catalog(reader=resources.fingerprint_reader),
        metadata=CachedExistence(
            provider=SubmittedMetadata(fingerprint_reader=resources.fingerprint_reader),
            redis=resources.redis,
            key_prefix=settings.redis.key_prefix,
        ),
        stats=resources.lookup_stats,
        metrics=metrics,
        return_metadata=settings.website.search_return_metadata,
    )
    return [Route("/v2/lookup", runner.endpoint("lookup", handler), methods=METHODS)]


def submission_routes(
    resources: Resources, runner: EndpointRunner, keys: ApiKeys, metrics: ApiMetrics
) -> list[BaseRoute]:
    ingest_db = resources.databases.ingest
    submit = SubmitHandler(
        keys=keys, ingest_db=ingest_db, publisher=resources.publisher, metrics=metrics
    )
    status = SubmissionStatusHandler(keys=keys, ingest_db=ingest_db)
    return [
        Route("/v2/submit", runner.endpoint("submit", submit), methods=METHODS),
        Route(
            "/v2/submission_status",
            runner.endpoint("submission_status", status),
            methods=METHODS,
        ),
    ]


def track_routes(resources: Resources, runner: EndpointRunner) -> list[BaseRoute]:
    catalog = Catalog(reader=resources.fingerprint_reader)
    return [
        Route(
            "/v2/track/list_by_mbid",
            runner.endpoint("track/list_by_mbid", ListByMbidHandler(catalog=catalog)),
            methods=METHODS,
        ),
        Route(
            "/v2/track/list_by_puid",
            runner.endpoint("track/list_by_puid", ListByPuidHandler()),
            methods=METHODS,
        ),
        Route(
            "/v2/fingerprint",
            runner.endpoint("fingerprint", FingerprintHandler(catalog=catalog)),
            methods=METHODS,
        ),
    ]


def user_routes(resources: Resources, runner: EndpointRunner, keys: ApiKeys) -> list[BaseRoute]:
    app_db = resources.databases.app
    return [
        Route(
            "/v2/user/lookup",
            runner.endpoint("user/lookup", UserLookupHandler(keys=keys, app_db=app_db)),
            methods=METHODS,
        ),
        Route(
            "/v2/user/create_anonymous",
            runner.endpoint(
                "user/create_anonymous", CreateAnonymousHandler(keys=keys, app_db=app_db)
            ),
            methods=METHODS,
        ),
        Route(
            "/v2/user/create_musicbrainz",
            runner.endpoint("user/create_musicbrainz", CreateMusicBrainzHandler()),
            methods=METHODS,
        ),
    ]
