"""`backup verify`: restore the latest backups into a scratch folder and check them.

An unverified backup is only a hope. PostgreSQL: the latest pgBackRest backup plus WAL is
restored into a scratch cluster (archiving off, so it never writes to the repository),
started on a free port, and checked: row counts of the main tables and a sample — the
newest imported submission's fingerprint and track exist and match the live database.
Dumps: `pg_restore --list` reads each. Index snapshots: the manifest and every segment
check out. Redis: the RDB file is whole. Results are recorded as `verified` timestamps.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from acoustid_stack.config import DatabaseName, Settings
from acoustid_stack.errors import UserError
from acoustid_stack.local.endpoints import PostgresEndpoint
from acoustid_stack.local.process import free_port
from acoustid_stack.local.servers import postgres_process
from acoustid_stack.ops import status
from acoustid_stack.ops.backups import DATABASES, pg_dump_for
from acoustid_stack.ops.layout import BackupRepository, StackFiles
from acoustid_stack.ops.pgbackrest import PgBackRest

COUNTED: dict[DatabaseName, tuple[str, ...]] = {
    "fingerprint": ("track", "fingerprint", "track_mbid"),
    "ingest": ("submission", "pending_submission", "submission_result"),
    "app": ("account", "application"),
}


@dataclass
class Verification:
    kind: str
    ok: bool
    detail: str
    counts: dict[str, int] = field(default_factory=dict)


def verify_all(repo: BackupRepository, files: StackFiles, settings: Settings) -> list[Verification]:
    """Verify every kind present in the repository; each result is recorded in status."""
    results: list[Verification] = []
    if repo.pgbackrest_config.exists():
        results.append(_recorded(repo, verify_postgresql(repo, settings)))
    for kind in repo.kinds():
        if not repo.backups(kind):
            continue
        if kind == "dump":
            results.append(_recorded(repo, verify_dump(repo)))
        elif kind.startswith("index"):
            results.append(_recorded(repo, verify_index_snapshot(repo, kind)))
        elif kind == "redis":
            results.append(_recorded(repo, verify_redis(repo)))
    return results


def _recorded(repo: BackupRepository, result: Verification) -> Verification:
    event = "verified" if result.ok else "verify_failed"
    status.record(repo, result.kind, event=event, error=None if result.ok else result.detail)
    return result


def verify_postgresql(repo: BackupRepository, settings: Settings) -> Verification:
    pgbackrest = PgBackRest(repo.pgbackrest_config)
    # beside the repository: restoring a large cluster into /tmp could fill it
    scratch = Path(tempfile.mkdtemp(prefix="verify-", dir=repo.root))
    scratch.chmod(0o755)
    data = scratch / "data"
    try:
        pgbackrest.restore(data, archive=False)
        process, endpoint = postgres_process(data, free_port(), log_path=scratch / "postgres.log")
        # TCP only: the restored postgresql.conf names the live cluster's socket folder
        process.argv += ["-c", "unix_socket_directories=", "-c", "archive_mode=off"]
        process.start()
        try:
            process.wait_ready(120)
            return _check_restored(endpoint, settings)
        finally:
            process.stop()
    except UserError as exc:
        return Verification("postgresql", False, str(exc))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _check_restored(endpoint: PostgresEndpoint, settings: Settings) -> Verification:
    counts: dict[str, int] = {}
    for database, tables in COUNTED.items():
        name = settings.database.get(database).name
        with psycopg.connect(endpoint.conninfo(name)) as conn:
            for table in tables:
                row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
                counts[f"{database}.{table}"] = int(row[0]) if row else 0
    with psycopg.connect(endpoint.conninfo(settings.database.get("ingest").name)) as conn:
        sample = conn.execute(
            "SELECT submission_id, fingerprint_id, track_id FROM submission_result "
            "ORDER BY submission_id DESC LIMIT 1"
        ).fetchone()
    if sample is None:
        return Verification(
            "postgresql", True, "restored; no imported submission to sample", counts
        )
    submission_id, fingerprint_id, track_id = sample
    restored = _track_of(
        endpoint.conninfo(settings.database.get("fingerprint").name), fingerprint_id
    )
    live = _track_of(settings.database.get("fingerprint").conninfo(), fingerprint_id)
    if restored != track_id or (live is not None and live != restored):
        return Verification(
            "postgresql",
            False,
            f"sample submission {submission_id}: fingerprint {fingerprint_id} has track "
            f"{restored} in the backup, {live} live, {track_id} recorded",
            counts,
        )
    return Verification(
        "postgresql",
        True,
        f"restored and sampled submission {submission_id} → fingerprint {fingerprint_id} → "
        f"track {track_id}",
        counts,
    )


def _track_of(conninfo: str, fingerprint_id: int) -> int | None:
    try:
        with psycopg.connect(conninfo, connect_timeout=3) as conn:
            row = conn.execute(
                "SELECT track_id FROM fingerprint WHERE id = %s", (fingerprint_id,)
            ).fetchone()
    except psycopg.OperationalError:
        return None  # the live database is down: the backup is checked on its own
    return int(row[0]) if row else None


def verify_dump(repo: BackupRepository) -> Verification:
    folder = repo.latest("dump")
    pg_restore = pg_dump_for(0).with_name("pg_restore")
    for name in DATABASES:
        result = subprocess.run(
            [str(pg_restore), "--list", str(folder / f"{name}.dump")],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            return Verification("dump", False, f"{name}.dump: {result.stderr.strip()}")
    return Verification("dump", True, f"{folder.name}: {len(DATABASES)} archives readable")


def verify_index_snapshot(repo: BackupRepository, kind: str) -> Verification:
    from acoustid_stack.index.segment import SegmentFileError  # noqa: PLC0415
    from acoustid_stack.index.store import verify_index_dir  # noqa: PLC0415

    folder = repo.latest(kind)
    with tempfile.TemporaryDirectory(dir=repo.root) as scratch:
        try:
            with tarfile.open(folder / "snapshot.tar") as archive:
                archive.extractall(scratch, filter="data")
            manifest = verify_index_dir(Path(scratch))
        except (tarfile.TarError, OSError, SegmentFileError) as exc:
            return Verification(kind, False, f"{folder.name}: {exc}")
    docs = sum(int(s["docs"]) for s in manifest["segments"])
    return Verification(kind, True, f"{folder.name}: {docs} documents", {"documents": docs})


def verify_redis(repo: BackupRepository) -> Verification:
    folder = repo.latest("redis")
    with (folder / "dump.rdb").open("rb") as rdb:
        magic = rdb.read(5)
    if magic != b"REDIS":
        return Verification("redis", False, f"{folder.name}: dump.rdb is not an RDB file")
    return Verification("redis", True, f"{folder.name}: RDB readable")
