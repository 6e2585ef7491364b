"""What the status and stats pages show: service health, counts, statistics rows.

Failure policy: every probe has a short timeout and reports "down" instead of failing the
page; a status page that errors when a service is down would be useless exactly then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

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
from acoustid_stack.submissions.databases import Databases

logger = logging.getLogger(__name__)

PROBE_TIMEOUT = 1.0


@dataclass(frozen=True)
class Health:
    name: str
    ok: bool
    detail: str


async def _probe(name: str, check: Awaitable[str]) -> Health:
    try:
        return Health(name, True, await asyncio.wait_for(check, PROBE_TIMEOUT))
    # any failure, whatever its type, means "down" on this page
    except Exception as exc:
        logger.warning("status probe %s failed: %s", name, exc)
        return Health(name, False, str(exc) or type(exc).__name__)


async def _database(engine: AsyncEngine) -> str:
    async def version() -> str:
        async with engine.connect() as conn:
            return str(await conn.scalar(text("SHOW server_version")))

    return await within(version(), PROBE_TIMEOUT)


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
        *(_probe(f"Index {url}", _index_shard(http, url)) for url in settings.index.shards),
    ]
    if js is not None:
        probes.append(
            _probe(f"NATS stream {settings.nats.stream}", _stream(js, settings.nats.stream))
        )
    else:
        probes.append(_nats_down())
    return list(await asyncio.gather(*probes))


async def _nats_down() -> Health:
    return Health("NATS", False, "not connected")


async def counts(databases: Databases) -> dict[str, int | None]:
    """Fingerprints, tracks, submissions, pending submissions and lookups in the last hour.

    Exact counts: fine at this project's sizes; a None means the database did not answer.
    """
    queries: dict[str, tuple[AsyncEngine, Any]] = {
        "fingerprints": (
            databases.fingerprint,
            select(func.count()).select_from(fp_db.fingerprint),
        ),
        "tracks": (databases.fingerprint, select(func.count()).select_from(fp_db.track)),
        "submissions": (databases.ingest, select(func.count()).select_from(ingest_db.submission)),
        "pending submissions": (
            databases.ingest,
            select(func.count()).select_from(ingest_db.pending_submission),
        ),
        "lookups in the last hour": (databases.app, _lookups_last_hour()),
    }

    async def count(engine: AsyncEngine, query: Any) -> int:
        async with engine.connect() as conn:
            return int(await conn.scalar(query) or 0)

    async def one(engine: AsyncEngine, query: Any) -> int | None:
        try:
            return await within(count(engine, query), PROBE_TIMEOUT)
        # shown as "unknown" rather than failing the page
        except Exception as exc:
            logger.warning("status count failed: %s", exc)
            return None

    values = await asyncio.gather(*(one(engine, query) for engine, query in queries.values()))
    return dict(zip(queries, values, strict=True))


def _lookups_last_hour() -> Any:
    t = app_db.stats_lookups
    now = func.timezone("UTC", func.now())
    return select(func.coalesce(func.sum(t.c.count_hits + t.c.count_nohits), 0)).where(
        t.c.date == func.date(now), t.c.hour == func.extract("hour", now)
    )


async def daily_stats(
    app: AsyncEngine, *, days: int = 30
) -> tuple[list[str], list[tuple[date, dict[str, int]]]]:
    """(counter names, [(day, {name: value})]) of the last `days` days, newest first."""
    t = app_db.stats
    since = date.today() - timedelta(days=days)
    async with app.connect() as conn:
        rows = (
            await conn.execute(select(t.c.date, t.c.name, t.c.value).where(t.c.date >= since))
        ).all()
    by_day: dict[date, dict[str, int]] = {}
    for row in rows:
        by_day.setdefault(row.date, {})[row.name] = row.value
    names = sorted({row.name for row in rows})
    return names, sorted(by_day.items(), reverse=True)


async def hourly_lookups(app: AsyncEngine, *, days: int = 2) -> list[tuple[date, int, int, int]]:
    """(day, hour, hits, misses) over all applications, newest first."""
    t = app_db.stats_lookups
    since = date.today() - timedelta(days=days)
    query = (
        select(t.c.date, t.c.hour, func.sum(t.c.count_hits), func.sum(t.c.count_nohits))
        .where(t.c.date >= since)
        .group_by(t.c.date, t.c.hour)
        .order_by(t.c.date.desc(), t.c.hour.desc())
    )
    async with app.connect() as conn:
        return [(r[0], int(r[1]), int(r[2]), int(r[3])) for r in await conn.execute(query)]
