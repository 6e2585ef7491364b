"""What the status page shows: service health and counts.

Failure policy: every probe has a short timeout and reports "down" instead of failing the
page; a status page that errors when a service is down would be useless exactly then.

The page is public: it names services without their addresses or versions (the reason a
probe failed goes to the log only), and its figures are computed at most once per
`[web] status_cache_seconds` by one view, which the others wait for, so repeated views
cannot fill the database pools. Large tables are counted from the planner's estimate, and
every count stops on the server at the probe deadline instead of running on unobserved.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
from nats.js import JetStreamContext
from redis.asyncio import Redis
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from acoustid_stack.config import Settings
from acoustid_stack.db.deadline import within
from acoustid_stack.db.schema import app as app_db
from acoustid_stack.db.schema import fingerprint as fp_db
from acoustid_stack.db.schema import ingest as ingest_db
from acoustid_stack.submissions.connection import ServiceConnection
from acoustid_stack.submissions.databases import Databases

logger = logging.getLogger(__name__)

PROBE_TIMEOUT = 1.0
#: below this many estimated rows a table is counted exactly (cheap, and exact on small sites)
EXACT_COUNT_BELOW = 100_000

T = TypeVar("T")


@dataclass(frozen=True)
class Health:
    name: str
    ok: bool
    detail: str


async def _probe(name: str, check: Awaitable[str]) -> Health:
    try:
        return Health(name, True, await asyncio.wait_for(check, PROBE_TIMEOUT))
    # any failure, whatever its type, means "down" on this page; why is for the log only
    except Exception as exc:
        logger.warning("status probe %s failed: %s", name, exc)
        return Health(name, False, "not answering")


async def _database(engine: AsyncEngine) -> str:
    async def select_one() -> str:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return "answering"

    return await within(select_one(), PROBE_TIMEOUT)


async def _redis(redis: Redis) -> str:
    await redis.ping()
    return "ping ok"


async def _stream(js: JetStreamContext, stream: str) -> str:
    info = await js.stream_info(stream)
    return f"{info.state.messages} messages waiting"


async def _index_shard(http: httpx.AsyncClient, url: str) -> str:
    response = await http.get(f"{url.rstrip('/')}/_health")
    response.raise_for_status()
    return "healthy"


async def service_health(
    *,
    settings: Settings,
    databases: Databases,
    redis: Redis,
    js: JetStreamContext | None,
    http: httpx.AsyncClient,
) -> list[Health]:
    """One line per service, probed concurrently."""
    probes = [
        _probe("PostgreSQL app", _database(databases.app)),
        _probe("PostgreSQL fingerprint", _database(databases.fingerprint)),
        _probe("PostgreSQL ingest", _database(databases.ingest)),
        _probe("Redis", _redis(redis)),
        *(
            _probe(f"Index shard {number}", _index_shard(http, url))
            for number, url in enumerate(settings.index.shards, start=1)
        ),
    ]
    if js is not None:
        probes.append(
            _probe(f"NATS stream {settings.nats.stream}", _stream(js, settings.nats.stream))
        )
    else:
        probes.append(_nats_down())
    return list(await asyncio.gather(*probes))


async def page_figures(
    *,
    settings: Settings,
    databases: Databases,
    redis: Redis,
    nats: ServiceConnection,
    http: httpx.AsyncClient,
) -> tuple[list[Health], dict[str, int | None]]:
    """What the status page shows: the services' health and the counts."""
    health = service_health(
        settings=settings, databases=databases, redis=redis, js=nats.jetstream(), http=http
    )
    return await asyncio.gather(health, counts(databases))


async def _nats_down() -> Health:
    return Health("NATS", False, "not connected")


async def counts(
    databases: Databases, *, exact_below: int = EXACT_COUNT_BELOW
) -> dict[str, int | None]:
    """Fingerprints, tracks, submissions, pending submissions and lookups in the last hour.

    A table the planner estimates at `exact_below` rows or more shows that estimate (an
    exact COUNT(*) reads the whole table); a None means the database did not answer in time.
    """
    tables: dict[str, tuple[AsyncEngine, Any]] = {
        "fingerprints": (databases.fingerprint, fp_db.fingerprint),
        "tracks": (databases.fingerprint, fp_db.track),
        "submissions": (databases.ingest, ingest_db.submission),
        "pending submissions": (databases.ingest, ingest_db.pending_submission),
    }

    async def count_rows(engine: AsyncEngine, table: Any) -> int:
        async with engine.begin() as conn:
            await deadline_on_server(conn)
            estimate = await conn.scalar(
                text("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(:name)"),
                {"name": table.fullname},
            )
            # -1: never analysed, so unknown
            if estimate is not None and estimate >= exact_below:
                return int(estimate)
            return int(await conn.scalar(select(func.count()).select_from(table)) or 0)

    async def lookups() -> int:
        async with databases.app.begin() as conn:
            await deadline_on_server(conn)
            return int(await conn.scalar(_lookups_last_hour()) or 0)

    async def one(count: Awaitable[int]) -> int | None:
        try:
            return await within(count, PROBE_TIMEOUT)
        # shown as "unknown" rather than failing the page
        except Exception as exc:
            logger.warning("status count failed: %s", exc)
            return None

    calls = [count_rows(engine, table) for engine, table in tables.values()]
    values = await asyncio.gather(*(one(call) for call in [*calls, lookups()]))
    return dict(zip([*tables, "lookups in the last hour"], values, strict=True))


async def deadline_on_server(conn: Any) -> None:
    """End the transaction's statements on the server at the probe deadline: `within` stops
    waiting but not the query, which would otherwise hold its pooled connection."""
    await conn.execute(text(f"SET LOCAL statement_timeout = {int(PROBE_TIMEOUT * 1000)}"))


class Cached(Generic[T]):
    """The last result of `compute`, recomputed when older than `seconds`; concurrent callers
    wait for the one computation under way instead of starting their own."""

    def __init__(
        self,
        compute: Callable[[], Awaitable[T]],
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._compute = compute
        self._seconds = seconds
        self._clock = clock
        self._lock = asyncio.Lock()
        self._value: T | None = None
        self._expires = 0.0

    async def get(self) -> T:
        async with self._lock:
            if self._value is None or self._clock() >= self._expires:
                self._value = await self._compute()
                self._expires = self._clock() + self._seconds
            return self._value


def _lookups_last_hour() -> Any:
    t = app_db.stats_lookups
    now = func.timezone("UTC", func.now())
    return select(func.coalesce(func.sum(t.c.count_hits + t.c.count_nohits), 0)).where(
        t.c.date == func.date(now), t.c.hour == func.extract("hour", now)
    )
