"""Take backups of a stack: pgBackRest base backup, pg_dump -Fc per database, index
snapshots, Redis RDB + AOF. JetStream is not copied: see `restore.republish_pending`.

Each backup lands in `<repository>/<kind>/<stamp>/` with a `DONE` marker written last, so
an interrupted backup is never mistaken for a good one; every outcome is recorded in
status.json and the metrics file.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from acoustid_stack.config import DatabaseName, Settings
from acoustid_stack.errors import UserError
from acoustid_stack.index.interfaces import FpindexError
from acoustid_stack.index.snapshots import download_snapshot
from acoustid_stack.local.binaries import find_binary
from acoustid_stack.ops import status
from acoustid_stack.ops.layout import BackupRepository, StackFiles
from acoustid_stack.ops.pgbackrest import PgBackRest
from acoustid_stack.ops.retention import Retention
from acoustid_stack.redis_client import connect_redis_sync

DATABASES: tuple[DatabaseName, ...] = ("app", "fingerprint", "ingest")
REDIS_SAVE_TIMEOUT = 120.0


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _finish(repo: BackupRepository, kind: str, folder: Path, details: dict[str, Any]) -> Path:
    size = folder_size(folder)
    meta = {"kind": kind, "taken_at": details.pop("taken_at"), "bytes": size, **details}
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


def backup_postgresql(repo: BackupRepository, kind: str | None = None) -> None:
    """A pgBackRest backup: `kind` full/diff/incr, default incr when a full one exists."""
    pgbackrest = PgBackRest(repo.pgbackrest_config)
    if kind is None:
        kind = "incr" if pgbackrest.info().get("backup") else "full"
    pgbackrest.backup(kind)
    backups = pgbackrest.info().get("backup", [])
    size = int(backups[-1]["info"]["repository"]["delta"]) if backups else None
    status.record(repo, "postgresql", event="success", size=size)


def pg_dump_for(server_major: int) -> Path:
    """A pg_dump at least as new as the server (Debian's or the pip-shipped one)."""
    for prefer_pip in (False, True):
        found = find_binary("pg_dump", prefer_pip=prefer_pip)
        if found is None:
            continue
        version = subprocess.run(
            [str(found), "--version"], capture_output=True, text=True, check=False
        ).stdout
        major = int(version.split()[-1].split(".")[0]) if version else 0
        if major >= server_major:
            return found
    raise UserError(
        f"no pg_dump for PostgreSQL {server_major}; "
        f"apt-get install postgresql-client-{server_major}"
    )


def backup_dumps(repo: BackupRepository, settings: Settings) -> Path:
    """`pg_dump -Fc` of each database: portable across PostgreSQL versions and hosts."""
    import psycopg  # noqa: PLC0415

    started = datetime.now(UTC)
    target = settings.database.get("app")
    with psycopg.connect(target.conninfo("postgres")) as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
    pg_dump = pg_dump_for(int(row[0]) // 10000 if row else 0)
    folder = repo.new_backup_dir("dump", started)
    for name in DATABASES:
        database = settings.database.get(name)
        result = subprocess.run(
            [str(pg_dump), "-Fc", "-f", str(folder / f"{name}.dump"), "-d", database.conninfo()],
            capture_output=True,
            text=True,
            check=False,
            timeout=3600,
        )
        if result.returncode != 0:
            raise UserError(f"pg_dump of {database.name} failed: {result.stderr.strip()}")
    return _finish(repo, "dump", folder, {"taken_at": started.isoformat()})


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
    the AOF copy less useful, the RDB copy is complete on its own.
    """
    client = connect_redis_sync(settings.redis, timeout=10)
    try:
        started = datetime.now(UTC)
        before = client.lastsave()
        client.bgsave()
        deadline = time.monotonic() + REDIS_SAVE_TIMEOUT
        while client.lastsave() == before:
            if time.monotonic() > deadline:
                raise UserError(f"Redis BGSAVE did not finish within {REDIS_SAVE_TIMEOUT:.0f} s")
            time.sleep(0.1)
        config = client.config_get("dir") | client.config_get("dbfilename")
        config |= client.config_get("appenddirname") or {}
        keys = int(client.dbsize())
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
    return _finish(repo, "redis", folder, {"taken_at": started.isoformat(), "keys": keys})


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
