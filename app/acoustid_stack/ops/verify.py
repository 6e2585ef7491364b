"""`backup verify`: restore the latest backups into scratch servers and check them.

An unverified backup is only a hope, and a check that a file merely starts right accepts
garbage. Files are first compared with the checksums recorded when the backup was taken
(bit rot, a partial copy); then every kind is restored by the real server program of its
own version, in a scratch folder beside the repository (never the live servers, never
/tmp: a large restore could fill it), which catches a backup that was bad from the start:

- PostgreSQL: the latest base backup (its tool checks its own checksums: pgBackRest's
  manifest, pg_verifybackup) + archived WAL, recovered by a scratch server of the
  backup's major version (archiving off, so it never writes to the repository); row
  counts of the main tables and a sample — the newest imported submission's fingerprint and
  track exist and match the live database.
- Dumps: each restored by the pg_restore of (at least) the dump's version into a scratch
  cluster; row counts must equal those counted in the dump's own snapshot.
- Index snapshots: extracted, every segment checksum checked, the index opened and
  documents it holds searched for by their fingerprints from the database.
- Redis/Valkey: the RDB loaded by a scratch server of the family that wrote it (Redis or
  Valkey), keys without a TTL counted against the backup; the AOF loaded the same way.

Results are recorded as `verified` timestamps (or failures) in status.json.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import psycopg
import redis

from acoustid_stack.config import Settings
from acoustid_stack.errors import UserError
from acoustid_stack.local.binaries import require_binary
from acoustid_stack.local.credentials import libpq_tool_login, write_secret
from acoustid_stack.local.endpoints import PostgresEndpoint
from acoustid_stack.local.process import free_port
from acoustid_stack.local.servers import (
    postgres_process,
    redis_process,
    running,
    unprivileged_user,
)
from acoustid_stack.ops import status
from acoustid_stack.ops.backups import (
    COUNTED,
    DATABASES,
    checksums,
    meta,
    redis_key_counts,
    table_counts,
)
from acoustid_stack.ops.layout import BackupRepository, StackFiles
from acoustid_stack.ops.pgtools import data_dir_major, prefer_pip_for
from acoustid_stack.ops.postgres_backups import configured, open_backups

if TYPE_CHECKING:
    from acoustid_stack.index.store import IndexStore

#: documents of an index snapshot searched for by their fingerprints
INDEX_SAMPLE = 20
SERVER_START_TIMEOUT = 120.0


@dataclass
class Verification:
    kind: str
    ok: bool
    detail: str
    counts: dict[str, int] = field(default_factory=dict)


def verify_all(repo: BackupRepository, files: StackFiles, settings: Settings) -> list[Verification]:
    """Verify every kind present in the repository; each result is recorded in status."""
    results: list[Verification] = []
    if configured(repo):
        results.append(_recorded(repo, verify_postgresql(repo, settings)))
    for kind in repo.kinds():
        if not repo.backups(kind):
            continue
        changed = _changed_files(repo.latest(kind))
        if changed:
            detail = f"{repo.latest(kind).name}: changed since the backup (checksum): {changed}"
            results.append(_recorded(repo, Verification(kind, False, detail)))
        elif kind == "dump":
            results.append(_recorded(repo, verify_dump(repo)))
        elif kind.startswith("index"):
            results.append(_recorded(repo, verify_index_snapshot(repo, kind, settings)))
        elif kind == "redis":
            results.append(_recorded(repo, verify_redis(repo)))
    return results


def _changed_files(folder: Path) -> str:
    """Files whose checksum differs from the one recorded when the backup was taken (a
    backup from before checksums were recorded has none to compare)."""
    recorded: dict[str, str] = meta(folder).get("sha256", {})
    now = checksums(folder)
    changed = [name for name, digest in recorded.items() if now.get(name) != digest]
    return ", ".join(changed)


def _recorded(repo: BackupRepository, result: Verification) -> Verification:
    event = "verified" if result.ok else "verify_failed"
    status.record(repo, result.kind, event=event, error=None if result.ok else result.detail)
    return result


@contextmanager
def _scratch(repo: BackupRepository) -> Iterator[Path]:
    # beside the repository: restoring a large cluster into /tmp could fill it
    repo.root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="verify-", dir=repo.root))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _scratch_postgres(
    data: Path, *, password: str | None, prefer_pip: bool
) -> Iterator[PostgresEndpoint]:
    """A PostgreSQL on `data` (initialised when empty), TCP only and never archiving.

    A restored copy keeps the live cluster's superuser `password`; a new one gets a random one.
    """
    password_file = data.parent / "postgres-password"
    write_secret(password_file, password or secrets.token_urlsafe(32), owner=unprivileged_user())
    process, endpoint = postgres_process(
        data,
        free_port(),
        log_path=data.parent / "postgres.log",
        password_file=password_file,
        prefer_pip=prefer_pip,
    )
    # the restored postgresql.conf names the live cluster's socket folder
    process.argv += ["-c", "unix_socket_directories=", "-c", "archive_mode=off"]
    with running((process, endpoint), SERVER_START_TIMEOUT):
        yield endpoint


# ---- PostgreSQL base backup + WAL ------------------------------------------------------


def verify_postgresql(repo: BackupRepository, settings: Settings) -> Verification:
    with _scratch(repo) as scratch:
        data = scratch / "data"
        try:
            open_backups(repo).restore(data, archive=False)
            major = data_dir_major(data)
            with _scratch_postgres(
                data,
                password=settings.database.get("app").password,
                prefer_pip=prefer_pip_for("postgres", major, exact=True),
            ) as endpoint:
                return _check_restored(endpoint, settings)
        except UserError as exc:
            return Verification("postgresql", False, str(exc))


def _check_restored(endpoint: PostgresEndpoint, settings: Settings) -> Verification:
    counts: dict[str, int] = {}
    for database in COUNTED:
        name = settings.database.get(database).name
        with psycopg.connect(endpoint.conninfo(name)) as conn:
            counts |= table_counts(conn, database)
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


# ---- dumps -----------------------------------------------------------------------------


def verify_dump(repo: BackupRepository) -> Verification:
    folder = repo.latest("dump")
    recorded = meta(folder)
    major = int(recorded.get("pg_dump_major", 0))
    try:
        prefer_pip = prefer_pip_for("pg_restore", major)
        pg_restore = require_binary("pg_restore", prefer_pip=prefer_pip)
        with (
            _scratch(repo) as scratch,
            _scratch_postgres(
                scratch / "data", password=None, prefer_pip=prefer_pip_for("postgres", major)
            ) as endpoint,
        ):
            counts = _restore_dumps(folder, pg_restore, endpoint)
    except UserError as exc:
        return Verification("dump", False, f"{folder.name}: {exc}")
    expected: dict[str, int] = recorded.get("counts", {})
    differ = [
        f"{k} {counts.get(k)} restored, {v} dumped"
        for k, v in expected.items()
        if counts.get(k) != v
    ]
    if differ:
        return Verification("dump", False, f"{folder.name}: {'; '.join(differ)}", counts)
    return Verification(
        "dump",
        True,
        f"{folder.name}: {len(DATABASES)} databases restored, row counts match",
        counts,
    )


def _restore_dumps(folder: Path, pg_restore: Path, endpoint: PostgresEndpoint) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in DATABASES:
        with psycopg.connect(endpoint.conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "verify_{name}"')
        # owners and grants name roles of the live server that the scratch one lacks
        with libpq_tool_login(endpoint.conninfo(f"verify_{name}")) as (conninfo, env):
            result = subprocess.run(
                [
                    str(pg_restore),
                    "--exit-on-error",
                    "--no-owner",
                    "--no-privileges",
                    *("-d", conninfo, str(folder / f"{name}.dump")),
                ],
                capture_output=True,
                text=True,
                check=False,
                env=env,
            )
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines() or ["no output"]
            raise UserError(f"{name}.dump does not restore: {lines[-1]}")
        with psycopg.connect(endpoint.conninfo(f"verify_{name}")) as conn:
            counts |= table_counts(conn, name)
    return counts


# ---- index snapshots -------------------------------------------------------------------


def verify_index_snapshot(repo: BackupRepository, kind: str, settings: Settings) -> Verification:
    from acoustid_stack.index.segment import SegmentFileError  # noqa: PLC0415
    from acoustid_stack.index.store import IndexStore, verify_index_dir  # noqa: PLC0415

    folder = repo.latest(kind)
    with _scratch(repo) as scratch:
        try:
            with tarfile.open(folder / "snapshot.tar") as archive:
                archive.extractall(scratch, filter="data")
            manifest = verify_index_dir(scratch)
            store = IndexStore(scratch)
            store.open()
        except (tarfile.TarError, OSError, SegmentFileError, ValueError, KeyError) as exc:
            return Verification(kind, False, f"{folder.name}: {exc}")
        try:
            docs = np.concatenate(
                [s.docs[~s.deleted] for s in store.segments()] or [np.zeros(0, np.uint32)]
            )
            missed, searched = _search_sample(store, docs, settings)
        finally:
            store.close()
    counts = {"documents": len(docs), "searched": searched}
    if missed:
        return Verification(
            kind,
            False,
            f"{folder.name}: fingerprints {missed} are in the snapshot but a search for them "
            "does not find them",
            counts,
        )
    detail = f"{folder.name}: version {manifest['version']}, {len(docs)} documents"
    detail += f", {searched} found by searching their fingerprints" if searched else ""
    return Verification(kind, True, detail, counts)


def _search_sample(
    store: IndexStore, docs: np.ndarray, settings: Settings
) -> tuple[list[int], int]:
    """Search the restored index for up to INDEX_SAMPLE of its documents, by the query
    terms of their fingerprints in the database; (ids not found, ids searched)."""
    from acoustid_stack.fingerprint.query import extract_query  # noqa: PLC0415
    from acoustid_stack.index.interfaces import SearchOptions  # noqa: PLC0415

    if not len(docs):
        return [], 0
    picked = np.unique(docs)[:: max(1, len(np.unique(docs)) // INDEX_SAMPLE)][:INDEX_SAMPLE]
    try:
        with psycopg.connect(
            settings.database.get("fingerprint").conninfo(), connect_timeout=3
        ) as conn:
            rows = conn.execute(
                "SELECT id, fingerprint FROM fingerprint WHERE id = ANY(%s)",
                ([int(i) for i in picked],),
            ).fetchall()
    except psycopg.OperationalError:
        return [], 0  # the live database is down: the snapshot is checked on its own
    missed = []
    for doc_id, hashes in rows:
        terms = extract_query(hashes).view(np.uint32)
        hits = store.search(terms, SearchOptions(limit=10, timeout=10.0))
        if int(doc_id) not in {hit.id for hit in hits}:
            missed.append(int(doc_id))
    return missed, len(rows)


# ---- Redis / Valkey --------------------------------------------------------------------

#: RDB files start with the name of the server family that wrote them
_FAMILIES = {b"REDIS": ("redis-server", "valkey-server"), b"VALKEY": ("valkey-server",)}


def _family_server(rdb: Path) -> Path:
    with rdb.open("rb") as handle:
        head = handle.read(6)
    for magic, programs in _FAMILIES.items():
        if head.startswith(magic):
            # the pip-shipped Valkey loads what `up` writes; Debian's Redis what hosts write
            return require_binary(*programs, prefer_pip=magic == b"VALKEY")
    raise UserError("dump.rdb is not an RDB file (neither REDIS nor VALKEY header)")


def _loaded_counts(server: Path, data: Path, args: list[str]) -> dict[str, int]:
    made = redis_process(
        data, free_port(), log_path=data / "server.log", extra_args=args, binary=server
    )
    try:
        with running(made, SERVER_START_TIMEOUT) as endpoint:
            client = redis.Redis.from_url(endpoint.url(), socket_timeout=30)
            try:
                return redis_key_counts(client.info("keyspace"))
            finally:
                client.close()
    except UserError:
        log = (data / "server.log").read_text(errors="replace").strip().splitlines()
        reason = next((line for line in reversed(log) if "#" in line or "Bad" in line), "")
        raise UserError(f"the server does not load it: {reason.strip() or 'see its log'}") from None


def verify_redis(repo: BackupRepository) -> Verification:
    folder = repo.latest("redis")
    recorded = meta(folder)
    with _scratch(repo) as scratch:
        try:
            server = _family_server(folder / "dump.rdb")
            rdb_dir = scratch / "rdb"
            rdb_dir.mkdir()
            shutil.copy2(folder / "dump.rdb", rdb_dir / "dump.rdb")
            try:
                counts = _loaded_counts(server, rdb_dir, ["--appendonly", "no"])
            except UserError as exc:
                raise UserError(f"dump.rdb: {exc}") from None
            aof = folder / "appendonlydir"
            if aof.is_dir():
                aof_dir = scratch / "aof"
                shutil.copytree(aof, aof_dir / "appendonlydir")
                try:
                    aof_counts = _loaded_counts(server, aof_dir, ["--appendonly", "yes"])
                except UserError as exc:
                    raise UserError(f"appendonlydir: {exc}") from None
                counts |= {f"aof_{k}": v for k, v in aof_counts.items()}
        except UserError as exc:
            return Verification("redis", False, f"{folder.name}: {exc}")
    expected = recorded.get("persistent_keys")
    if expected is not None and counts["persistent_keys"] != expected:
        return Verification(
            "redis",
            False,
            f"{folder.name}: dump.rdb holds {counts['persistent_keys']} keys without a TTL, "
            f"{expected} when it was saved",
            counts,
        )
    return Verification(
        "redis",
        True,
        f"{folder.name}: {server.name} loaded dump.rdb"
        + (" and appendonlydir" if "aof_keys" in counts else "")
        + f", {counts['persistent_keys']} keys without a TTL as saved",
        counts,
    )
