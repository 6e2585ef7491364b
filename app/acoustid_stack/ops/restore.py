"""Bring a stack back: promote the replica, restore PostgreSQL (to a time), Redis, catch the
index up from the database, re-publish pending submissions to JetStream.

Each function is one runbook step; the process starts and stops around them belong to the
service manager (systemd on hosts, the drill locally).
"""

from __future__ import annotations

import asyncio
import configparser
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg

from acoustid_stack.config import Settings
from acoustid_stack.errors import UserError
from acoustid_stack.local.process import port_open
from acoustid_stack.local.servers import LOOPBACK
from acoustid_stack.ops.backups import meta
from acoustid_stack.ops.interfaces import Cluster
from acoustid_stack.ops.layout import BackupRepository, StackFiles
from acoustid_stack.ops.postgres_backups import open_backups, reconfigure

PROMOTE_TIMEOUT = 60
#: Submission ids handed out after a restore point may be in clients' hands and in
#: JetStream's duplicate window (5 min): a new submission reusing one would be dropped as
#: a duplicate. Skipping this many ids makes every later id new.
ID_GAP = 1_000_000
#: Index snapshots and the changelog are written by different clocks and transactions:
#: catch up from a little before the snapshot. Re-inserting a document is harmless.
CATCH_UP_MARGIN = timedelta(minutes=2)
CATCH_UP_BATCH = 500


def failover(files: StackFiles, repo: BackupRepository) -> Cluster:
    """Promote the streaming replica and point the app config and the backups at it."""
    old = open_backups(repo).cluster()
    ports = files.ports()
    candidates = [
        name
        for name in ("postgresql", "postgresql-replica")
        if name in ports and files.server_dir(name) != old.data_dir
    ]
    if not candidates:
        raise UserError(f"{files.root} has no PostgreSQL replica to promote")
    name = candidates[0]
    replica = Cluster(files.server_dir(name), ports[name], old.socket_dir)
    try:
        with psycopg.connect(replica.conninfo(), autocommit=True, connect_timeout=5) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            if row and row[0]:
                conn.execute("SELECT pg_promote(true, %s)", (PROMOTE_TIMEOUT,))
                # promotion checkpoints in the background; pg_control shows the new
                # timeline only afterwards, and pgBackRest refuses to back up until then
                conn.execute("CHECKPOINT")
    except psycopg.OperationalError as exc:
        raise UserError(f"the replica {name} at port {ports[name]} does not answer: {exc}") from exc
    reconfigure(repo, replica)
    set_database_port(files.config, replica.port)
    return replica


def set_database_port(config: Path, port: int) -> None:
    """Point `[database] port` of acoustid.conf at the new primary; the app reads it at start."""
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(config)
    ini["database"]["port"] = str(port)
    with config.open("w") as handle:
        ini.write(handle)


def restore_postgresql(repo: BackupRepository, *, target_time: str | None) -> Cluster:
    """Replace the primary's data folder by a base backup + archived WAL, replayed to
    `target_time` (or to the end of the archive). PostgreSQL must be stopped."""
    backups = open_backups(repo)
    cluster = backups.cluster()
    if port_open(LOOPBACK, cluster.port):
        raise UserError(
            f"PostgreSQL still listens on port {cluster.port}; stop it before restoring "
            f"into {cluster.data_dir}"
        )
    backups.restore(cluster.data_dir, target_time=_recovery_target(target_time))
    return cluster


def _recovery_target(text: str | None) -> datetime | None:
    if text is None:
        return None
    example = "like 2025-01-31 12:00:00+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"--time {text!r} is not a timestamp {example}") from None
    if moment.tzinfo is None:
        # the server's time zone is not the operator's: an unzoned time is ambiguous
        raise UserError(f"--time {text!r} has no UTC offset; give one, {example}")
    return moment


def clear_recovery_target(settings: Settings) -> None:
    """Remove the recovery target pgBackRest wrote into postgresql.auto.conf: a replica
    cloned from this cluster copies that file and would stop replaying at the target."""
    with psycopg.connect(settings.database.get("ingest").conninfo(), autocommit=True) as conn:
        for name in ("recovery_target_time", "recovery_target_action", "recovery_target"):
            conn.execute(f"ALTER SYSTEM RESET {name}")
        conn.execute("SELECT pg_reload_conf()")


def advance_submission_ids(settings: Settings, gap: int = ID_GAP) -> int:
    """Move the submission id sequence `gap` ids ahead; the next id it will hand out."""
    with psycopg.connect(settings.database.get("ingest").conninfo(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT setval(pg_get_serial_sequence('submission', 'id'), "
            "(SELECT GREATEST(last_value, (SELECT COALESCE(max(id), 0) FROM submission)) "
            "FROM submission_id_seq) + %s)",
            (gap,),
        ).fetchone()
    assert row is not None
    return int(row[0]) + 1


def wait_writable(settings: Settings, timeout: float = 60.0) -> None:
    """Wait until the configured PostgreSQL accepts writes (recovery done, promoted).

    Asks the `postgres` database: on a new stack ours do not exist yet."""
    conninfo = settings.database.get("ingest").conninfo("postgres")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(conninfo, connect_timeout=2) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                if row and not row[0]:
                    return
        except psycopg.OperationalError:
            pass
        time.sleep(0.2)
    raise UserError(f"PostgreSQL did not accept writes within {timeout:.0f} s; see its log")


def restore_redis(repo: BackupRepository, redis_dir: Path, redis_port: int) -> Path:
    """Copy the latest RDB + AOF backup into `redis_dir` (Redis must be stopped)."""
    if port_open(LOOPBACK, redis_port):
        raise UserError(f"Redis still listens on port {redis_port}; stop it before restoring")
    backup = repo.latest("redis")
    if redis_dir.exists():
        shutil.rmtree(redis_dir)
    redis_dir.mkdir(parents=True)
    shutil.copy2(backup / "dump.rdb", redis_dir / "dump.rdb")
    if (backup / "appendonlydir").is_dir():
        shutil.copytree(backup / "appendonlydir", redis_dir / "appendonlydir")
    return backup


@dataclass(frozen=True)
class CatchUp:
    since: datetime
    inserted: int
    deleted: int


def index_catch_up(settings: Settings, since: datetime, *, shard: str | None = None) -> CatchUp:
    """Re-apply every fingerprint change recorded in `fpindex_changelog` since `since` (minus
    a margin) to the index: insert current query terms, delete removed fingerprints.

    With `shard` (a URL of [index] shards), only the documents that shard owns.
    """
    return asyncio.run(_index_catch_up(settings, since - CATCH_UP_MARGIN, shard))


async def _index_catch_up(settings: Settings, since: datetime, shard: str | None) -> CatchUp:
    from acoustid_stack.fingerprint.query import extract_query  # noqa: PLC0415
    from acoustid_stack.index.client import ShardedIndexClient  # noqa: PLC0415
    from acoustid_stack.index.interfaces import Change, Delete, Insert  # noqa: PLC0415

    client = ShardedIndexClient.from_settings(settings)
    client.timeout = 30.0
    inserted = deleted = 0
    target = settings.database.get("fingerprint")
    try:
        async with await psycopg.AsyncConnection.connect(target.conninfo()) as conn:
            cursor = await conn.execute(
                "SELECT DISTINCT c.fingerprint_id, f.fingerprint FROM fpindex_changelog c "
                "LEFT JOIN fingerprint f ON f.id = c.fingerprint_id "
                "WHERE c.created >= %s ORDER BY c.fingerprint_id",
                (since,),
            )
            while rows := await cursor.fetchmany(CATCH_UP_BATCH):
                if shard is not None:
                    owners = client.ring.owner_indexes([row[0] for row in rows])
                    rows = [
                        r
                        for r, o in zip(rows, owners, strict=True)
                        if client.ring.shards[int(o)] == shard.rstrip("/")
                    ]
                changes: list[Change] = []
                for fingerprint_id, hashes in rows:
                    if hashes is None:
                        changes.append(Delete(int(fingerprint_id)))
                        deleted += 1
                    else:
                        terms = extract_query(hashes).view(np.uint32)
                        changes.append(Insert(int(fingerprint_id), terms))
                        inserted += 1
                if changes:
                    await client.update(changes)
    finally:
        await client.close()
    return CatchUp(since, inserted, deleted)


def snapshot_time(repo: BackupRepository, shard_name: str) -> datetime:
    """When the latest snapshot of `shard_name` (e.g. index-2) was taken."""
    return datetime.fromisoformat(meta(repo.latest(shard_name))["taken_at"])
