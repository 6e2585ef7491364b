"""`restore check`: is every part of the stack up, and is redundancy back?

The last step of every runbook. Red when a part does not answer; yellow when it answers
without redundancy (no streaming replica, a stream below its replica count).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
import psycopg
import redis

from acoustid_stack.config import Settings
from acoustid_stack.ops.interfaces import Cluster
from acoustid_stack.ops.layout import BackupRepository, StackFiles
from acoustid_stack.ops.postgres_backups import configured, open_backups
from acoustid_stack.ops.wal import Lsn
from acoustid_stack.redis_client import connect_redis_sync
from acoustid_stack.submissions.connection import Reconnect, connect_nats

OK, DEGRADED, DOWN = "ok", "degraded", "down"


@dataclass(frozen=True)
class Check:
    part: str
    state: str
    detail: str


def _http(url: str) -> Check:
    try:
        code = httpx.get(f"{url}/_health", timeout=3.0).status_code
    except httpx.HTTPError as exc:
        return Check(url, DOWN, str(exc) or type(exc).__name__)
    return Check(url, OK if code == 200 else DOWN, f"HTTP {code}")


def check_postgresql(settings: Settings, files: StackFiles, repo: BackupRepository) -> list[Check]:
    primary = settings.database.get("ingest")
    try:
        with psycopg.connect(primary.conninfo(), connect_timeout=3) as conn:
            row = conn.execute(
                "SELECT pg_is_in_recovery(), pg_current_wal_lsn()::text, "
                "(SELECT count(*) FROM pending_submission)"
            ).fetchone()
    except psycopg.Error as exc:
        return [Check("postgresql primary", DOWN, str(exc).strip().splitlines()[0])]
    assert row is not None
    if row[0]:
        return [Check("postgresql primary", DOWN, "in recovery: not writable")]
    checks = [Check("postgresql primary", OK, f"port {primary.port}, {row[2]} pending")]
    primary_lsn = Lsn.parse(row[1])
    ports = files.ports()
    others = [
        n for n in ("postgresql", "postgresql-replica") if n in ports and ports[n] != primary.port
    ]
    if configured(repo):
        primary_dir = open_backups(repo).cluster().data_dir
        others = [n for n in others if files.server_dir(n) != primary_dir]
    for name in others:
        try:
            cluster = Cluster(files.server_dir(name), ports[name])
            with psycopg.connect(cluster.conninfo(), connect_timeout=3) as conn:
                replica = conn.execute(
                    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text"
                ).fetchone()
        except psycopg.Error:
            checks.append(Check(f"postgresql {name}", DEGRADED, "no streaming replica"))
            continue
        if replica is None or not replica[0] or replica[1] is None:
            checks.append(Check(f"postgresql {name}", DEGRADED, "not a streaming replica"))
            continue
        lag = primary_lsn - Lsn.parse(replica[1])
        checks.append(Check(f"postgresql {name}", OK, f"replica, {max(lag, 0)} bytes behind"))
    return checks


def check_redis(settings: Settings) -> Check:
    client = connect_redis_sync(settings.redis, timeout=3)
    try:
        keys = client.dbsize()
    except redis.RedisError as exc:
        return Check("redis", DOWN, str(exc))
    finally:
        client.close()
    return Check("redis", OK, f"{keys} keys")


def check_nats(settings: Settings) -> Check:
    async def probe() -> Check:
        nc = await asyncio.wait_for(connect_nats(settings.nats, reconnect=Reconnect.FAIL_FAST), 5)
        try:
            info = await nc.jetstream().stream_info(settings.nats.stream)
        finally:
            await nc.close()
        wanted = info.config.num_replicas or 1
        replicas = info.cluster.replicas or [] if info.cluster else []
        current = 1 + sum(1 for r in replicas if r.current) if info.cluster else 1
        state = OK if current >= wanted else DEGRADED
        return Check(
            "nats", state, f"stream {settings.nats.stream}: {current}/{wanted} replicas current"
        )

    try:
        return asyncio.run(probe())
    except Exception as exc:  # any failure to reach the stream means NATS is down for us
        return Check("nats", DOWN, str(exc) or type(exc).__name__)


def check_stack(settings: Settings, files: StackFiles, repo: BackupRepository) -> list[Check]:
    checks = check_postgresql(settings, files, repo)
    checks.append(check_redis(settings))
    checks.append(check_nats(settings))
    checks += [_http(shard) for shard in settings.index.shards]
    checks.append(_http(f"http://{settings.api.host}:{settings.api.port}"))
    return checks
