"""Take backups of a stack: pgBackRest base backup, pg_dump -Fc per database, index
snapshots, Redis RDB + AOF. JetStream is not copied: see `restore.republish_pending`.

Each backup lands in `<repository>/<kind>/<stamp>/` with a `DONE` marker written last, so
an interrupted backup is never mistaken for a good one; every outcome is recorded in
status.json and the metrics file.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import redis

from acoustid_stack.config import DatabaseName, Settings
from acoustid_stack.errors import UserError
from acoustid_stack.index.interfaces import FpindexError
from acoustid_stack.index.snapshots import download_snapshot
from acoustid_stack.local.binaries import require_binary
from acoustid_stack.local.credentials import libpq_tool_login
from acoustid_stack.ops import status
from acoustid_stack.ops.interfaces import BaseBackup
from acoustid_stack.ops.layout import BackupRepository, StackFiles, folder_size
from acoustid_stack.ops.pgtools import binary_major, prefer_pip_for, server_major
from acoustid_stack.ops.postgres_backups import open_backups
from acoustid_stack.ops.retention import Retention
from acoustid_stack.redis_client import connect_redis_sync

DATABASES: tuple[DatabaseName, ...] = ("app", "fingerprint", "ingest")
#: the tables whose row counts a dump records and `backup verify` compares
COUNTED: dict[DatabaseName, tuple[str, ...]] = {
    "fingerprint": ("track", "fingerprint", "track_mbid"),
    "ingest": ("submission", "pending_submission", "submission_result"),
    "app": ("account", "application"),
}
REDIS_SAVE_TIMEOUT = 120.0
DUMP_TIMEOUT = 3600


def checksums(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under `folder` but meta.json and DONE, by relative path."""
    sums = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name not in ("meta.json", "DONE"):
            with path.open("rb") as handle:
                sums[str(path.relative_to(folder))] = hashlib.file_digest(
                    handle, "sha256"
                ).hexdigest()
    return sums


def _finish(repo: BackupRepository, kind: str, folder: Path, details: dict[str, Any]) -> Path:
    """Seal a backup: meta.json with its size and checksums (so `backup verify` notices bit
    rot and partial copies), then DONE."""
    size = folder_size(folder)
    meta = {"kind": kind, "taken_at": details.pop("taken_at"), "bytes": size, **details}
    meta["sha256"] = checksums(folder)
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    (folder / "DONE").touch()
    status.record(repo, kind, event="success", size=size)
    return folder


def recorded(repo: BackupRepository, kind: str, take: Callable[[], Path | None]) -> Path | None:
    """Run one backup; a failure is recorded (so the alert sees it) and re-raised."""
    try:
        return take()
    except Exception as exc:
        status.record(repo, kind, event="failure", error=str(exc))
        raise


def backup_postgresql(repo: BackupRepository, kind: str | None = None) -> BaseBackup:
    """A base backup with the repository's tool (`kind` full/diff/incr for pgBackRest)."""
    made = open_backups(repo).backup(kind)
    status.record(repo, "postgresql", event="success", size=made.size)
    return made


def table_counts(conn: psycopg.Connection[Any], database: DatabaseName) -> dict[str, int]:
    """Rows of the tables `backup verify` compares, as `<database>.<table>`."""
    counts = {}
    for table in COUNTED[database]:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
        counts[f"{database}.{table}"] = int(row[0]) if row else 0
    return counts


def backup_dumps(repo: BackupRepository, settings: Settings) -> Path:
    """`pg_dump -Fc` of each database: portable across PostgreSQL versions and hosts.

    Each dump reads a snapshot exported by a transaction that also counts the rows of the
    main tables, so `backup verify` can compare a restore with exactly what was dumped.
    """
    started = datetime.now(UTC)
    major = server_major(settings.database.get("app").conninfo("postgres"))
    prefer_pip = prefer_pip_for("pg_dump", major)
    pg_dump = require_binary("pg_dump", prefer_pip=prefer_pip)
    folder = repo.new_backup_dir("dump", started)
    counts: dict[str, int] = {}
    for name in DATABASES:
        database = settings.database.get(name)
        with psycopg.connect(database.conninfo()) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            row = conn.execute("SELECT pg_export_snapshot()").fetchone()
            assert row is not None
            counts |= table_counts(conn, name)
            with libpq_tool_login(database.conninfo()) as (conninfo, env):
                argv = [str(pg_dump), "-Fc", "-f", str(folder / f"{name}.dump")]
                argv += [f"--snapshot={row[0]}", "-d", conninfo]
                result = subprocess.run(
                    argv, capture_output=True, text=True, check=False, timeout=DUMP_TIMEOUT, env=env
                )
        if result.returncode != 0:
            raise UserError(f"pg_dump of {database.name} failed: {result.stderr.strip()}")
    details = {"taken_at": started.isoformat(), "pg_dump_major": binary_major(pg_dump)}
    return _finish(repo, "dump", folder, details | {"counts": counts})


def backup_index(repo: BackupRepository, files: StackFiles, settings: Settings) -> list[Path]:
    """`GET /<index>/_snapshot` of every shard, stored off the node as `snapshot.tar`."""
    taken = []
    shards = dict(zip(files.index_shards(), settings.index.shards, strict=False))
    for name, url in shards.items():
        started = datetime.now(UTC)
        folder = repo.new_backup_dir(name, started)
        try:
            asyncio.run(download_snapshot(url, settings.index.name, folder / "snapshot.tar"))
        except FpindexError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise UserError(str(exc)) from exc
        taken.append(_finish(repo, name, folder, {"taken_at": started.isoformat(), "shard": url}))
    return taken


def backup_redis(repo: BackupRepository, settings: Settings) -> Path:
    """BGSAVE, wait for it, copy the RDB file and the AOF folder.

    The copy happens right after a completed save; an AOF rewrite racing it only makes
    the AOF copy less useful, the RDB copy is complete on its own. The key counts are read
    in the same transaction as BGSAVE, so they are those of the saved state: keys without
    a TTL (which cannot expire before a restore) must all come back.
    """
    client = connect_redis_sync(settings.redis, timeout=10)
    try:
        started = datetime.now(UTC)
        before = client.lastsave()
        transaction = client.pipeline(transaction=True)
        transaction.info("keyspace")
        transaction.bgsave()
        keyspace = transaction.execute()[0]
        deadline = time.monotonic() + REDIS_SAVE_TIMEOUT
        while client.lastsave() == before:
            if time.monotonic() > deadline:
                raise UserError(f"Redis BGSAVE did not finish within {REDIS_SAVE_TIMEOUT:.0f} s")
            time.sleep(0.1)
        config = client.config_get("dir") | client.config_get("dbfilename")
        config |= client.config_get("appenddirname") or {}
    except redis.RedisError as exc:
        raise UserError(f"Redis at {settings.redis.host}:{settings.redis.port}: {exc}") from exc
    finally:
        client.close()
    source = Path(str(config["dir"]))
    folder = repo.new_backup_dir("redis", started)
    shutil.copy2(source / str(config["dbfilename"]), folder / "dump.rdb")
    aof = source / str(config.get("appenddirname") or "appendonlydir")
    if aof.is_dir():
        shutil.copytree(aof, folder / "appendonlydir")
    counts = redis_key_counts(keyspace)
    return _finish(repo, "redis", folder, {"taken_at": started.isoformat(), **counts})


def redis_key_counts(keyspace: dict[str, Any]) -> dict[str, int]:
    """`keys` and `persistent_keys` (no TTL) over every database of INFO keyspace."""
    keys = sum(int(db["keys"]) for db in keyspace.values())
    expiring = sum(int(db["expires"]) for db in keyspace.values())
    return {"keys": keys, "persistent_keys": keys - expiring}


def prune(repo: BackupRepository, retention: Retention) -> list[Path]:
    """Delete backups (other than pgBackRest's) that `retention` does not keep."""
    removed = []
    for kind in repo.kinds():
        folders = repo.backups(kind)
        by_time = {_taken_at(folder): folder for folder in folders}
        keep = retention.keep(by_time)
        for moment, folder in by_time.items():
            if moment not in keep:
                shutil.rmtree(folder)
                removed.append(folder)
    return removed


def _taken_at(folder: Path) -> datetime:
    return datetime.fromisoformat(json.loads((folder / "meta.json").read_text())["taken_at"])


def meta(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "meta.json").read_text())
    return data
