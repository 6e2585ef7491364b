"""`backup run|list|verify|status` on both server sets users run: Debian's PostgreSQL 15 +
pgBackRest + Redis 7 (hosts) and the `local` extra's PostgreSQL 18 + pg_basebackup +
Valkey 9 (`acoustid-stack up`). Verify must restore every kind for real, and fail, naming
the kind, on every damaged artefact."""

import json
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import pytest
import redis
from click.testing import CliRunner

from acoustid_stack.cli import cli
from acoustid_stack.config import Settings, load_settings
from acoustid_stack.db.migrate import upgrade
from acoustid_stack.errors import UserError
from acoustid_stack.fingerprint.audio import fpcalc, write_chords
from acoustid_stack.fingerprint.codec import decode_api_fingerprint
from acoustid_stack.fingerprint.query import extract_query
from acoustid_stack.index.client import ShardedIndexClient
from acoustid_stack.index.interfaces import Insert
from acoustid_stack.local.process import free_port
from acoustid_stack.local.servers import (
    grant_traversal,
    index_process,
    init_postgres,
    running,
    start_postgres,
    start_redis,
)
from acoustid_stack.local.stack import Layout, write_config
from acoustid_stack.ops.backups import checksums
from acoustid_stack.ops.drills.stack import BACKUP_TOOLS, SERVER_SETS
from acoustid_stack.ops.interfaces import Cluster
from acoustid_stack.ops.layout import BackupRepository, StackFiles
from acoustid_stack.ops.pgtools import data_dir_major
from acoustid_stack.ops.postgres_backups import configure_backups

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass
class Stack:
    root: Path
    servers: str
    settings: Settings

    @property
    def data(self) -> list[str]:
        return ["--data-dir", str(self.root)]

    @property
    def repo(self) -> BackupRepository:
        return BackupRepository(self.root / "backup")


def _add_song(settings: Settings, index_url: str, seed: int) -> int:
    """A track with one real fingerprint, in the database and in the index."""
    import asyncio

    wav = write_chords(Path(tempfile.mkdtemp()) / "song.wav", seed=seed, seconds=30)
    hashes = decode_api_fingerprint(fpcalc(wav)["fingerprint"])
    shutil.rmtree(wav.parent)
    with psycopg.connect(settings.database.get("fingerprint").conninfo()) as conn:
        row = conn.execute("INSERT INTO track (gid) VALUES (%s) RETURNING id", (uuid.uuid4(),))
        track_id = row.fetchone()[0]  # type: ignore[index]
        row = conn.execute(
            "INSERT INTO fingerprint (fingerprint, length, track_id) VALUES (%s, 30, %s) "
            "RETURNING id",
            ([int(h) for h in hashes], track_id),
        )
        fingerprint_id = int(row.fetchone()[0])  # type: ignore[index]

    async def insert() -> None:
        client = ShardedIndexClient(shards=[index_url], timeout=30.0)
        try:
            await client.update([Insert(fingerprint_id, extract_query(hashes).view(np.uint32))])
        finally:
            await client.close()

    asyncio.run(insert())
    return fingerprint_id


@pytest.fixture(scope="module", params=SERVER_SETS)
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """PostgreSQL archiving with the set's backup tool, Redis/Valkey with AOF and an index
    shard, databases migrated, an account and two songs: what `backup run` backs up.

    Outside pytest's basetemp, which concurrent pytest sessions prune, and short enough for
    PostgreSQL's 107-byte socket paths."""
    servers = request.param
    pip = servers == "pip"
    root = Path(tempfile.mkdtemp(prefix=f"acoustid-backup-{servers}-"))
    root.chmod(0o755)
    grant_traversal(root, up_to=root)
    ports = {name: free_port() for name in ("postgresql", "redis", "nats", "index", "api", "web")}
    StackFiles(root).save_ports(ports)
    write_config(Layout(root), ports, database_prefix="acoustid")
    repo = BackupRepository(root / "backup")
    backups = configure_backups(
        repo, Cluster(root / "postgresql", ports["postgresql"]), BACKUP_TOOLS[servers]
    )
    secrets = Layout(root).secrets
    init_postgres(
        root / "postgresql",
        password_file=secrets.postgresql,
        settings=backups.archive_settings(),
        prefer_pip=pip,
    )
    postgres, _ = start_postgres(
        root / "postgresql",
        ports["postgresql"],
        log_path=root / "pg.log",
        password_file=secrets.postgresql,
        prefer_pip=pip,
    )
    cache, cache_endpoint = start_redis(
        root / "redis",
        ports["redis"],
        log_path=root / "redis.log",
        password=secrets.redis.read_text(),
        extra_args=["--appendonly", "yes"],
        prefer_pip=pip,
    )
    try:
        settings = load_settings(str(root / "acoustid.conf"), environ={})
        for _ in upgrade(settings.database):
            pass
        with psycopg.connect(settings.database.get("app").conninfo()) as conn:
            conn.execute("INSERT INTO account (name, apikey) VALUES ('backup test', 'k1')")
        client = redis.Redis.from_url(cache_endpoint.url())
        client.set("persistent", "1")
        client.set("expiring", "1", ex=3600)
        client.close()
        backups.prepare()
        made = index_process(root / "index", ports["index"], log_path=root / "index.log")
        with running(made, 60) as index_url:
            for seed in (21, 22):
                _add_song(settings, index_url, seed)
            yield Stack(root, servers, settings)
    finally:
        cache.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


def _invoke(*args: str, exit_code: int = 0) -> str:
    # a UserError ends the real CLI with exit 1; here it is caught and counts as that
    result = CliRunner().invoke(cli, list(args), catch_exceptions=exit_code != 0)
    assert result.exit_code == exit_code, result.output
    assert isinstance(result.exception, UserError | SystemExit | None), result.exception
    return result.output


@pytest.fixture(scope="module")
def backed_up(stack: Stack) -> Stack:
    _invoke("backup", "run", *stack.data)
    return stack


def test_the_servers_are_the_versions_users_run(backed_up: Stack) -> None:
    major = data_dir_major(backed_up.root / "postgresql")
    rdb = (backed_up.repo.latest("redis") / "dump.rdb").read_bytes()
    if backed_up.servers == "pip":
        assert major >= 18
        assert backed_up.repo.basebackup_config.exists()
        assert rdb.startswith(b"VALKEY")
    else:
        assert major == 15
        assert backed_up.repo.pgbackrest_config.exists()
        assert rdb.startswith(b"REDIS")


def test_backups_are_listed_unverified_until_verify_restores_and_counts_them(
    backed_up: Stack,
) -> None:
    listed = _invoke("backup", "list", *backed_up.data)
    assert "unverified" in listed
    assert "WAL" in listed

    verified = _invoke("backup", "verify", *backed_up.data)
    assert "postgresql: ok" in verified
    assert "app.account: 1" in verified
    assert "fingerprint.fingerprint: 2" in verified
    assert "dump: ok" in verified
    assert "row counts match" in verified
    assert "index: ok" in verified
    assert "2 found by searching" in verified
    assert "redis: ok" in verified
    assert "1 keys without a TTL as saved" in verified
    assert "unverified" not in _invoke("backup", "list", *backed_up.data)
    _invoke("backup", "status", *backed_up.data)

    metrics = (backed_up.repo.root / "acoustid_backup.prom").read_text()
    assert 'acoustid_backup_last_success_timestamp_seconds{kind="postgresql"}' in metrics


def test_dumps_are_taken_by_a_pg_dump_of_the_servers_version(backed_up: Stack) -> None:
    recorded = json.loads((backed_up.repo.latest("dump") / "meta.json").read_text())
    assert recorded["pg_dump_major"] == data_dir_major(backed_up.root / "postgresql")


@pytest.fixture
def damaged(backed_up: Stack) -> Iterator[Stack]:
    """The backed-up stack; every file a test damages (saved beside it as `.orig` by
    _damage) is put back afterwards."""
    yield backed_up
    for original in backed_up.repo.root.rglob("*.orig"):
        original.replace(original.with_suffix(""))


def _keep(path: Path) -> None:
    shutil.copy2(path, path.with_name(path.name + ".orig"))


def _reseal(path: Path) -> None:
    """Record `path`'s current checksum in its backup's meta.json, as if the backup had been
    taken that way: then only a real restore can tell that it is bad."""
    folder = next(p for p in path.parents if (p / "meta.json").exists())
    meta = folder / "meta.json"
    if not meta.with_name("meta.json.orig").exists():
        _keep(meta)
    data = json.loads(meta.read_text())
    data["sha256"] = checksums(folder)
    meta.write_text(json.dumps(data))


def _damage(path: Path, at: float = 0.5, *, reseal: bool = True) -> None:
    """Flip one byte of `path` at the fraction `at` of its length, keeping the original."""
    _keep(path)
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0xFF
    path.write_bytes(bytes(data))
    if reseal:
        _reseal(path)


def _verify_fails(stack: Stack, kind: str) -> str:
    output = _invoke("backup", "verify", *stack.data, exit_code=1)
    assert f"{kind}: FAILED" in output, output
    return output


def test_a_dump_changed_after_the_backup_fails_verify_by_its_checksum(damaged: Stack) -> None:
    _damage(damaged.repo.latest("dump") / "fingerprint.dump", reseal=False)
    assert "fingerprint.dump" in _verify_fails(damaged, "dump")


def test_a_truncated_dump_fails_verify(damaged: Stack) -> None:
    dump = damaged.repo.latest("dump") / "fingerprint.dump"
    _keep(dump)
    dump.write_bytes(dump.read_bytes()[: dump.stat().st_size * 2 // 3])
    _reseal(dump)
    assert "fingerprint.dump does not restore" in _verify_fails(damaged, "dump")


def test_a_dump_missing_rows_fails_verify(damaged: Stack) -> None:
    stack = damaged
    meta = stack.repo.latest("dump") / "meta.json"
    _keep(meta)
    meta.write_text(meta.read_text().replace('"app.account": 1', '"app.account": 2'))
    _reseal(meta.with_name("fingerprint.dump"))
    assert "app.account 1 restored, 2 dumped" in _verify_fails(stack, "dump")


def test_an_rdb_with_only_a_valid_header_fails_verify(damaged: Stack) -> None:
    stack = damaged
    rdb = stack.repo.latest("redis") / "dump.rdb"
    _keep(rdb)
    rdb.write_bytes(rdb.read_bytes()[:9] + b"rest")
    _reseal(rdb)
    assert "dump.rdb" in _verify_fails(stack, "redis")


def test_a_damaged_rdb_fails_verify(damaged: Stack) -> None:
    stack = damaged
    _damage(stack.repo.latest("redis") / "dump.rdb", at=0.6)
    _verify_fails(stack, "redis")


def test_a_damaged_aof_fails_verify(damaged: Stack) -> None:
    stack = damaged
    aof = stack.repo.latest("redis") / "appendonlydir"
    increments = sorted(aof.glob("*.incr.aof")) or sorted(aof.glob("*.aof"))
    target = max(increments, key=lambda p: p.stat().st_size)
    assert target.stat().st_size > 0
    # a wrong length prefix in the middle of the command stream
    _keep(target)
    target.write_bytes(target.read_bytes().replace(b"$", b"#", 1))
    _reseal(target)
    assert "appendonlydir" in _verify_fails(stack, "redis")


def test_a_damaged_index_snapshot_fails_verify(damaged: Stack) -> None:
    stack = damaged
    snapshot = stack.repo.latest("index") / "snapshot.tar"
    with tarfile.open(snapshot) as archive:
        segment = next(m for m in archive.getmembers() if m.isfile() and "segment" in m.name)
    # every 8th byte of the segment file inside the tar: a single byte may land in alignment
    # padding, which no checksum covers and no search reads
    _keep(snapshot)
    data = bytearray(snapshot.read_bytes())
    for at in range(segment.offset_data, segment.offset_data + segment.size, 8):
        data[at] ^= 0xFF
    snapshot.write_bytes(bytes(data))
    _reseal(snapshot)
    _verify_fails(stack, "index")


def test_a_base_backup_missing_its_wal_fails_verify(damaged: Stack) -> None:
    stack = damaged
    if stack.servers == "pip":
        base = sorted((stack.repo.root / "basebackup" / "base").iterdir())[-1]
        victim = next(p for p in sorted((base / "global").iterdir()) if p.name == "pg_control")
    else:
        backup_dir = stack.repo.root / "pgbackrest" / "backup" / "acoustid"
        label = sorted(p for p in backup_dir.iterdir() if p.name[0].isdigit())[-1]
        victim = next((label / "pg_data" / "global").glob("pg_control*"))
    _damage(victim, at=0.01, reseal=False)
    _verify_fails(stack, "postgresql")


def test_status_fails_while_a_kind_was_never_backed_up(stack: Stack, tmp_path: Path) -> None:
    repo = ["--repo", str(tmp_path / "repo")]
    _invoke("backup", "run", *stack.data, *repo, "--what", "dump")
    output = _invoke("backup", "status", *stack.data, *repo, exit_code=1)
    assert "dump: last success" in output
    assert "postgresql: last success never" in output
