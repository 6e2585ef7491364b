"""Statistics: lookup counters in Redis (written by the api) and daily database counters.

Redis layout (reference §4.3), under the configured key prefix, 256 partitions `xx`:
- `lookups:<xx>` field `YYYY-MM-DD:HH:<application_id>:<hit|miss>` → count
- `ua:<xx>` field `YYYY-MM-DD:<application_id>:<quoted user agent>:<quoted ip>` → count

The api calls `record_lookup` / `record_user_agent`; Redis errors there are the caller's to
ignore (stats never fail a lookup). Cron flushes: read a partition, add the counts to the
database and commit, then subtract exactly what was read from Redis (HINCRBY −n), so lookups
counted during the flush are kept. A crash between commit and subtract counts one batch
twice; subtracting first could lose it instead, and losing is worse for billing-like stats.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote, unquote

from redis.asyncio import Redis
from sqlalchemy import Select, Table, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from acoustid_stack.db.schema import app as app_db
from acoustid_stack.db.schema import fingerprint as fp_db
from acoustid_stack.db.schema import ingest as ingest_db

PARTITIONS = 256


def _partition(key_prefix: str, kind: str, field: str) -> str:
    return f"{key_prefix}{kind}:{zlib.crc32(field.encode()) % PARTITIONS:02x}"


async def record_lookup(
    redis: Redis, *, key_prefix: str, application_id: int, hit: bool, now: datetime | None = None
) -> None:
    """Count one lookup of an application in the current hour (api side)."""
    moment = now or datetime.now(UTC)
    field = f"{moment:%Y-%m-%d:%H}:{application_id}:{'hit' if hit else 'miss'}"
    await redis.hincrby(_partition(key_prefix, "lookups", field), field, 1)


async def record_user_agent(
    redis: Redis,
    *,
    key_prefix: str,
    application_id: int,
    user_agent: str,
    ip: str,
    now: datetime | None = None,
) -> None:
    """Count one request of an application from a user agent and address today (api side)."""
    moment = now or datetime.now(UTC)
    field = f"{moment:%Y-%m-%d}:{application_id}:{quote(user_agent, safe='')}:{quote(ip, safe='')}"
    await redis.hincrby(_partition(key_prefix, "ua", field), field, 1)


async def flush_lookup_stats(*, redis: Redis, app: AsyncEngine, key_prefix: str) -> int:
    """Move lookup counters from Redis into `stats_lookups`; the number of fields moved."""
    moved = 0
    for key in _partition_keys(key_prefix, "lookups"):
        counts = await _read(redis, key)
        rows: dict[tuple[date, int, int], list[int]] = defaultdict(lambda: [0, 0])
        for field, count in counts.items():
            day, hour, application_id, kind = field.split(":")
            position = 1 if kind == "miss" else 0  # [hits, misses]
            rows[(date.fromisoformat(day), int(hour), int(application_id))][position] += count
        if not rows:
            continue
        table = app_db.stats_lookups
        async with app.begin() as conn:
            await _add(
                conn,
                table,
                [
                    {
                        "date": d,
                        "hour": h,
                        "application_id": a,
                        "count_hits": c[0],
                        "count_nohits": c[1],
                    }
                    for (d, h, a), c in rows.items()
                ],
                keys=("date", "hour", "application_id"),
                counters=("count_hits", "count_nohits"),
            )
        await _subtract(redis, key, counts)
        moved += len(counts)
    return moved


async def flush_user_agent_stats(*, redis: Redis, app: AsyncEngine, key_prefix: str) -> int:
    """Move user-agent counters from Redis into `stats_user_agents`; the fields moved."""
    moved = 0
    for key in _partition_keys(key_prefix, "ua"):
        counts = await _read(redis, key)
        if not counts:
            continue
        rows: dict[tuple[date, int, str, str], int] = defaultdict(int)
        for field, count in counts.items():
            day, application_id, user_agent, ip = field.split(":")
            rows[
                (date.fromisoformat(day), int(application_id), unquote(user_agent), unquote(ip))
            ] += count
        async with app.begin() as conn:
            await _add(
                conn,
                app_db.stats_user_agents,
                [
                    {"date": d, "application_id": a, "user_agent": u, "ip": i, "count": c}
                    for (d, a, u, i), c in rows.items()
                ],
                keys=("date", "application_id", "user_agent", "ip"),
                counters=("count",),
            )
        await _subtract(redis, key, counts)
        moved += len(counts)
    return moved


def daily_counters(
    app: AsyncEngine, fingerprint: AsyncEngine, ingest: AsyncEngine
) -> Mapping[str, tuple[AsyncEngine, Select[Any]]]:
    """`stats.name` → (database, scalar query) of the counters `update_stats` records."""
    return {
        "account.all": (app, select(func.count()).select_from(app_db.account)),
        "application.all": (app, select(func.count()).select_from(app_db.application)),
        "track.all": (fingerprint, select(func.count()).select_from(fp_db.track)),
        "fingerprint.all": (fingerprint, select(func.count()).select_from(fp_db.fingerprint)),
        "track_mbid.unique": (
            fingerprint,
            select(func.count(fp_db.track_mbid.c.mbid.distinct())).where(
                fp_db.track_mbid.c.disabled.is_(False)
            ),
        ),
        "submission.all": (ingest, select(func.count()).select_from(ingest_db.submission)),
        "submission.pending": (
            ingest,
            select(func.count()).select_from(ingest_db.pending_submission),
        ),
    }


async def update_stats(
    *, app: AsyncEngine, fingerprint: AsyncEngine, ingest: AsyncEngine
) -> dict[str, int]:
    """Record today's value of each daily counter in `stats` (re-running overwrites today)."""
    values: dict[str, int] = {}
    for name, (engine, query) in daily_counters(app, fingerprint, ingest).items():
        async with engine.connect() as conn:
            values[name] = int(await conn.scalar(query) or 0)
    table = app_db.stats
    statement = insert(table).values([{"name": n, "value": v} for n, v in values.items()])
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.name, table.c.date], set_={"value": statement.excluded.value}
    )
    async with app.begin() as conn:
        await conn.execute(statement)
    return values


def _partition_keys(key_prefix: str, kind: str) -> Iterable[str]:
    return (f"{key_prefix}{kind}:{i:02x}" for i in range(PARTITIONS))


async def _read(redis: Redis, key: str) -> dict[str, int]:
    raw = await redis.hgetall(key)
    return {
        (f.decode() if isinstance(f, bytes) else f): int(v) for f, v in raw.items() if int(v) > 0
    }


# Subtract what was flushed and drop fields that reach zero, atomically: a separate HDEL could
# delete an increment the api made in between.
_SUBTRACT = """
for i = 1, #ARGV, 2 do
  if redis.call('HINCRBY', KEYS[1], ARGV[i], -tonumber(ARGV[i + 1])) <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
"""


async def _subtract(redis: Redis, key: str, counts: Mapping[str, int]) -> None:
    args = [item for field, count in counts.items() for item in (field, count)]
    await redis.eval(_SUBTRACT, 1, key, *args)


async def _add(
    conn: AsyncConnection,
    table: Table,
    rows: list[dict[str, object]],
    *,
    keys: tuple[str, ...],
    counters: tuple[str, ...],
) -> None:
    """Upsert `rows`, adding their counters to existing rows with the same key."""
    statement = insert(table).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c[k] for k in keys],
        set_={c: table.c[c] + statement.excluded[c] for c in counters},
    )
    await conn.execute(statement)
