"""Statistics: lookup counters in Redis (written by the api) and daily database counters.

Redis layout (reference §4.3), under the configured key prefix, 256 partitions `xx`:
- `lookups:<xx>` field `YYYY-MM-DD:HH:<application_id>:<hit|miss>` → count
- `ua:<xx>` field `YYYY-MM-DD:<application_id>:<quoted user agent>:<quoted ip>` → count

The api counts in-process and adds its counts to these fields every second
(`api.stats.LookupStats`, with `lookup_counter` / `user_agent_counter`); `record_lookup` /
`record_user_agent` count one at once. Redis errors there are the caller's to handle (stats
never fail a lookup). Cron flushes: read a partition, add the counts to the
database and commit, then subtract exactly what was read from Redis (HINCRBY −n), so lookups
counted during the flush are kept. A crash between commit and subtract counts one batch
twice; subtracting first could lose it instead, and losing is worse for billing-like stats.

Poison policy: the user agent and address are request data, cut to `db.text_limits` when
counted and again when flushed (older fields). A field that still cannot be stored, being
malformed or refused by the database for its row's data (`db.row_errors`), is dropped from
Redis and counted as skipped: the partition's other rows are stored one at a time around it,
and neither it nor the partitions after it are held back. Any other database error (a server
down) stops the flush, which the next run repeats.
"""

from __future__ import annotations

import logging
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote, unquote

import sqlalchemy.exc
from redis.asyncio import Redis
from sqlalchemy import Select, Table, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from acoustid_stack.db import text_limits
from acoustid_stack.db.row_errors import is_row_error
from acoustid_stack.db.schema import app as app_db
from acoustid_stack.db.schema import fingerprint as fp_db
from acoustid_stack.db.schema import ingest as ingest_db

logger = logging.getLogger(__name__)

PARTITIONS = 256


def _partition(key_prefix: str, kind: str, field: str) -> str:
    return f"{key_prefix}{kind}:{zlib.crc32(field.encode()) % PARTITIONS:02x}"


def lookup_counter(
    key_prefix: str, *, application_id: int, hit: bool, moment: datetime
) -> tuple[str, str]:
    """(hash key, field) counting lookups of an application in `moment`'s hour (api side)."""
    field = f"{moment:%Y-%m-%d:%H}:{application_id}:{'hit' if hit else 'miss'}"
    return _partition(key_prefix, "lookups", field), field


def user_agent_counter(
    key_prefix: str, *, application_id: int, user_agent: str, ip: str, moment: datetime
) -> tuple[str, str]:
    """(hash key, field) counting requests of an application from a user agent and address on
    `moment`'s day (api side); both are cut to their `text_limits`, so a field stays small
    whatever the request sent."""
    agent = quote(user_agent[: text_limits.USER_AGENT], safe="")
    address = quote(ip[: text_limits.IP], safe="")
    field = f"{moment:%Y-%m-%d}:{application_id}:{agent}:{address}"
    return _partition(key_prefix, "ua", field), field


async def record_lookup(
    redis: Redis, *, key_prefix: str, application_id: int, hit: bool, now: datetime | None = None
) -> None:
    """Count one lookup of an application in the current hour."""
    moment = now or datetime.now(UTC)
    key, field = lookup_counter(key_prefix, application_id=application_id, hit=hit, moment=moment)
    await redis.hincrby(key, field, 1)


async def record_user_agent(
    redis: Redis,
    *,
    key_prefix: str,
    application_id: int,
    user_agent: str,
    ip: str,
    now: datetime | None = None,
) -> None:
    """Count one request of an application from a user agent and address today."""
    key, field = user_agent_counter(
        key_prefix,
        application_id=application_id,
        user_agent=user_agent,
        ip=ip,
        moment=now or datetime.now(UTC),
    )
    await redis.hincrby(key, field, 1)


@dataclass(frozen=True)
class Flushed:
    """What a flush did with the counter fields it read from Redis. Every field read leaves
    Redis: `moved` ones were added to the database, `skipped` ones dropped (malformed, or
    their row refused by the database) and logged."""

    table: str
    moved: int
    skipped: int

    def __str__(self) -> str:
        return f"{self.table}: {self.moved} counters moved, {self.skipped} skipped"


RowKey = tuple[object, ...]


@dataclass(frozen=True)
class _Counters:
    """How the fields of one kind of hash become rows of a table."""

    kind: str
    table: Table
    keys: tuple[str, ...]
    counters: tuple[str, ...]
    #: a field and its count → the row's key (in `keys` order) and the counts it adds;
    #: ValueError when the field is malformed
    parse: Callable[[str, int], tuple[RowKey, dict[str, int]]]


_LOOKUP_COUNTERS = {"hit": "count_hits", "miss": "count_nohits"}


def _lookup_row(field: str, count: int) -> tuple[RowKey, dict[str, int]]:
    day, hour, application_id, kind = field.split(":")
    if kind not in _LOOKUP_COUNTERS:
        raise ValueError(f"not a hit or a miss: {kind!r}")
    key = (date.fromisoformat(day), int(hour), int(application_id))
    return key, {_LOOKUP_COUNTERS[kind]: count}


def _user_agent_row(field: str, count: int) -> tuple[RowKey, dict[str, int]]:
    day, application_id, user_agent, ip = field.split(":")
    # cut again: fields counted before the limits existed may be longer
    key = (
        date.fromisoformat(day),
        int(application_id),
        unquote(user_agent)[: text_limits.USER_AGENT],
        unquote(ip)[: text_limits.IP],
    )
    return key, {"count": count}


_LOOKUPS = _Counters(
    "lookups",
    app_db.stats_lookups,
    ("date", "hour", "application_id"),
    ("count_hits", "count_nohits"),
    _lookup_row,
)
_USER_AGENTS = _Counters(
    "ua",
    app_db.stats_user_agents,
    ("date", "application_id", "user_agent", "ip"),
    ("count",),
    _user_agent_row,
)


async def flush_lookup_stats(*, redis: Redis, app: AsyncEngine, key_prefix: str) -> Flushed:
    """Move lookup counters from Redis into `stats_lookups`."""
    return await _flush(redis, app, key_prefix, _LOOKUPS)


async def flush_user_agent_stats(*, redis: Redis, app: AsyncEngine, key_prefix: str) -> Flushed:
    """Move user-agent counters from Redis into `stats_user_agents`."""
    return await _flush(redis, app, key_prefix, _USER_AGENTS)


async def _flush(redis: Redis, app: AsyncEngine, key_prefix: str, spec: _Counters) -> Flushed:
    """Each partition in its own transaction. A field that cannot be stored is dropped from
    Redis with the others, so it can neither hold back the rest nor grow without end."""
    moved = skipped = 0
    first_error: str | None = None
    for key in _partition_keys(key_prefix, spec.kind):
        counts = await _read(redis, key)
        if not counts:
            continue
        totals: dict[RowKey, Counter[str]] = defaultdict(Counter)
        fields: Counter[RowKey] = Counter()
        malformed = 0
        for field, count in counts.items():
            try:
                row_key, added = spec.parse(field, count)
            except ValueError as exc:
                malformed += 1
                first_error = first_error or f"malformed field {field[:80]!r}: {exc}"
                continue
            totals[row_key].update(added)
            fields[row_key] += 1
        refused, error = await _store(app, spec, totals)
        first_error = first_error or error
        await _subtract(redis, key, counts)
        dropped = malformed + sum(fields[row_key] for row_key in refused)
        moved += len(counts) - dropped
        skipped += dropped
    if skipped:
        logger.warning(
            "%s: dropped %d counter fields that could not be stored; first: %s",
            spec.table.name,
            skipped,
            first_error,
        )
    return Flushed(spec.table.name, moved, skipped)


async def _store(
    app: AsyncEngine, spec: _Counters, totals: Mapping[RowKey, Counter[str]]
) -> tuple[list[RowKey], str | None]:
    """Add `totals` to the table in one transaction; the row keys the database refused
    (then every other row is stored, one at a time) and the first refusal's message."""
    if not totals:
        return [], None
    rows = {
        row_key: {
            **dict(zip(spec.keys, row_key, strict=True)),
            **{c: counts[c] for c in spec.counters},
        }
        for row_key, counts in totals.items()
    }
    try:
        async with app.begin() as conn:
            await _add(conn, spec, list(rows.values()))
        return [], None
    except sqlalchemy.exc.DBAPIError as exc:
        if not is_row_error(exc):
            raise
    refused: list[RowKey] = []
    first_error: str | None = None
    async with app.begin() as conn:
        for row_key, row in rows.items():
            try:
                async with conn.begin_nested():
                    await _add(conn, spec, [row])
            except sqlalchemy.exc.DBAPIError as exc:
                if not is_row_error(exc):
                    raise
                refused.append(row_key)
                first_error = first_error or str(exc.orig).splitlines()[0]
    return refused, first_error


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


async def _add(conn: AsyncConnection, spec: _Counters, rows: list[dict[str, object]]) -> None:
    """Upsert `rows`, adding their counters to existing rows with the same key."""
    table = spec.table
    statement = insert(table).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c[k] for k in spec.keys],
        set_={c: table.c[c] + statement.excluded[c] for c in spec.counters},
    )
    await conn.execute(statement)
