"""The shell, config and probe files the compose stack runs, exercised against real servers
on this machine: the postgres init script, the backup and restore tools, nats.conf, the
health probe and docker/acoustid.conf."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tarfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from acoustid_stack.config import load_settings
from acoustid_stack.db.migrate import EXTENSIONS
from acoustid_stack.local.binaries import require_binary
from acoustid_stack.local.process import ManagedProcess, free_port, port_open
from acoustid_stack.local.services import Services

from .conftest import DOCKER_DIR, script_of

pytestmark = [pytest.mark.deploy, pytest.mark.integration]

INIT_SCRIPT = DOCKER_DIR / "postgres" / "initdb.d" / "10-acoustid-databases.sh"
HEALTHCHECK = DOCKER_DIR / "healthcheck.py"
INDEX_NAME = "fingerprints"


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return int(response.status) == 200
    except OSError:
        return False


@pytest.fixture
def index_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A real index server with an empty `fingerprints` index, as compose starts it."""
    port = free_port()
    data = tmp_path / "index"
    process = ManagedProcess(
        name="index",
        argv=[
            sys.executable,
            "-m",
            "acoustid_stack",
            "run",
            "index",
            "--dir",
            str(data),
            "--port",
            str(port),
            "--create",
            INDEX_NAME,
        ],
        log_path=tmp_path / "index.log",
        ready=lambda: http_ok(f"http://127.0.0.1:{port}/{INDEX_NAME}/_health"),
    )
    process.start()
    try:
        process.wait_ready(30)
        yield port, data
    finally:
        process.stop()


@pytest.fixture
def databases(services: Services, test_prefix: str) -> Iterator[list[str]]:
    names = [f"{test_prefix}_compose_{db}" for db in ("app", "fingerprint", "ingest")]
    yield names
    with psycopg.connect(services.postgres().conninfo(), autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_environ(services: Services, password_file: Path) -> dict[str, str]:
    pg = services.postgres()
    password_file.write_text(pg.password or "unused-with-trust-auth\n")
    return {
        **os.environ,
        "PGHOST": pg.host,
        "PGPORT": str(pg.port),
        "PGUSER": pg.user,
        "POSTGRES_USER": pg.user,
        "POSTGRES_PASSWORD_FILE": str(password_file),
    }


def run_init_script(environ: dict[str, str], databases: list[str]) -> None:
    subprocess.run(
        ["sh", str(INIT_SCRIPT)],
        env={**environ, "DATABASES": " ".join(databases)},
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_init_script_creates_the_databases_with_their_extensions_and_can_run_twice(
    services: Services, databases: list[str], tmp_path: Path
) -> None:
    environ = pg_environ(services, tmp_path / "postgres_password")
    run_init_script(environ, databases)
    run_init_script(environ, databases)
    for name in databases:
        with psycopg.connect(services.postgres().conninfo(name)) as conn:
            installed = {row[0] for row in conn.execute("SELECT extname FROM pg_extension")}
        assert set(EXTENSIONS) <= installed, name


def test_init_script_default_databases_are_the_configured_ones() -> None:
    settings = load_settings(path=None, environ={})
    names = [settings.database.get(db).name for db in ("app", "fingerprint", "ingest")]
    assert f"${{DATABASES:-{' '.join(names)}}}" in INIT_SCRIPT.read_text()


def run_tool(service: dict[str, Any], environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = script_of(service)
    if argv[0] == "python":
        argv[0] = sys.executable
    return subprocess.run(
        argv, env=environ, capture_output=True, text=True, timeout=120, check=False
    )


def test_backup_then_restore_round_trips_databases_and_the_index_snapshot(
    services: Services,
    databases: list[str],
    index_server: tuple[int, Path],
    resolved: dict[str, Any],
    tmp_path: Path,
) -> None:
    port, index_dir = index_server
    environ = pg_environ(services, tmp_path / "postgres_password")
    run_init_script(environ, databases)
    with psycopg.connect(services.postgres().conninfo(databases[0]), autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (id int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    backups = tmp_path / "backups"
    tools = {
        **environ,
        "DATABASES": " ".join(databases),
        "BACKUP_DIR": str(backups),
        "BACKUP_NAME": "20260101T000000Z",
        "INDEX_HOST": "127.0.0.1",
        "INDEX_PORT": str(port),
        "INDEX_NAME": INDEX_NAME,
    }
    # compose order: backup waits for backup-index to complete
    for name in ("backup-index", "backup"):
        result = run_tool(resolved["services"][name], tools)
        assert result.returncode == 0, f"{name}: {result.stderr}"
    stamp = backups / "20260101T000000Z"
    assert sorted(p.name for p in stamp.iterdir()) == sorted(
        [f"{db}.dump" for db in databases] + [f"{INDEX_NAME}.tar"]
    )
    with tarfile.open(stamp / f"{INDEX_NAME}.tar") as archive:
        snapshot = set(archive.getnames())
    assert "manifest.json" in snapshot

    with psycopg.connect(services.postgres().conninfo(databases[0]), autocommit=True) as conn:
        conn.execute("DELETE FROM kept")
    restored = tmp_path / "restored-index"
    # chown to uid 1000 needs root inside the container; the files are this user's here
    restore = resolved["services"]["restore"]
    restore = {
        **restore,
        "command": [
            *restore["command"][:2],
            restore["command"][2].replace("chown -R", ": chown -R"),
        ],
    }
    result = run_tool(restore, {**tools, "RESTORE_FROM": stamp.name, "INDEX_DIR": str(restored)})
    assert result.returncode == 0, result.stderr
    with psycopg.connect(services.postgres().conninfo(databases[0])) as conn:
        assert conn.execute("SELECT id FROM kept").fetchall() == [(42,)]
    files = {
        p.relative_to(restored / INDEX_NAME).as_posix()
        for p in (restored / INDEX_NAME).rglob("*")
        if p.is_file()
    }
    assert files == {name for name in snapshot if not name.endswith("/")} - {"segments"}
    assert (index_dir / INDEX_NAME / "manifest.json").read_bytes() == (
        restored / INDEX_NAME / "manifest.json"
    ).read_bytes()


@pytest.mark.parametrize("missing", ["BACKUP_NAME", "RESTORE_FROM"])
def test_backup_tools_refuse_to_run_without_a_backup_name(
    missing: str, resolved: dict[str, Any], tmp_path: Path
) -> None:
    environ = {
        **os.environ,
        "BACKUP_DIR": str(tmp_path),
        "INDEX_HOST": "127.0.0.1",
        "INDEX_PORT": "1",
        "INDEX_NAME": INDEX_NAME,
        "DATABASES": "",
        "POSTGRES_PASSWORD_FILE": "/dev/null",
        "BACKUP_NAME": "",
        "RESTORE_FROM": "",
    }
    services = ["backup-index", "backup"] if missing == "BACKUP_NAME" else ["restore"]
    for name in services:
        result = run_tool(resolved["services"][name], environ)
        assert result.returncode != 0, name
        assert f"ACOUSTID_{missing}" in result.stderr, name


def test_backup_index_fails_loudly_when_the_index_refuses_the_snapshot(
    index_server: tuple[int, Path], resolved: dict[str, Any], tmp_path: Path
) -> None:
    port, _ = index_server
    result = run_tool(
        resolved["services"]["backup-index"],
        {
            **os.environ,
            "BACKUP_DIR": str(tmp_path),
            "BACKUP_NAME": "x",
            "INDEX_HOST": "127.0.0.1",
            "INDEX_PORT": str(port),
            "INDEX_NAME": "no-such-index",
        },
    )
    assert result.returncode != 0
    assert "index snapshot failed" in result.stderr


def test_health_probe_passes_on_a_served_path_and_fails_otherwise(
    index_server: tuple[int, Path],
) -> None:
    port, _ = index_server

    def probe(*urls: str) -> int:
        return subprocess.run(
            [sys.executable, str(HEALTHCHECK), *urls], capture_output=True, timeout=30, check=False
        ).returncode

    assert probe(f"http://127.0.0.1:{port}/_health") == 0
    assert (
        probe(f"http://127.0.0.1:{port}/_health", f"http://127.0.0.1:{port}/nothing/_health") == 1
    )
    assert probe(f"http://127.0.0.1:{free_port()}/_health") == 1
    assert probe() == 2


# `openssl rand -hex 24` (docker/README.md) gives secrets like these: nats-server reads an
# unquoted `42e27d…` as a malformed number, and `12345…` as an integer.
@pytest.mark.parametrize(
    "password", ["42e27dc0ffee4b1d9a8e7f6a5b4c3d2e1f0a9b8c7d6e5f40", "123456", "s3cret"]
)
def test_nats_runs_jetstream_with_the_password_from_its_secret_file(
    resolved: dict[str, Any], tmp_path: Path, password: str
) -> None:
    """The compose command itself, run by sh: only the paths and ports differ."""
    import nats

    client_port, monitor_port = free_port(), free_port()
    secret = tmp_path / "nats_password"
    secret.write_text(password + "\n")
    shell, flag, script = script_of(resolved["services"]["nats"])
    assert " exec nats-server " in script
    for container_path, host_path in {
        "/run/secrets/nats_password": secret,
        "/etc/nats/nats.conf": DOCKER_DIR / "nats" / "nats.conf",
        "/data": tmp_path / "js",
        "exec nats-server": f"exec {require_binary('nats-server')}",
    }.items():
        script = script.replace(container_path, str(host_path))
    # compose's fixed ports are taken here; flags win over the file
    script += f" --port {client_port} --http_port {monitor_port} --addr 127.0.0.1"
    server = ManagedProcess(
        name="nats",
        argv=[shell, flag, script],
        env=dict(os.environ),
        log_path=tmp_path / "nats.log",
        ready=lambda: port_open("127.0.0.1", client_port),
    )
    server.start()
    try:
        server.wait_ready(20)
        assert http_ok(f"http://127.0.0.1:{monitor_port}/healthz?js-enabled-only=true")

        async def connect(password: str) -> None:
            nc = await nats.connect(
                f"nats://acoustid:{password}@127.0.0.1:{client_port}",
                allow_reconnect=False,
                max_reconnect_attempts=0,
            )
            await nc.jetstream().account_info()
            await nc.close()

        asyncio.run(connect(password))
        with pytest.raises(Exception, match=r"(?i)authorization"):
            asyncio.run(connect("wrong"))
    finally:
        server.stop()


def test_compose_config_loads_with_every_secret_read_from_its_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("postgres_password", "redis_password", "nats_password", "website_secret"):
        (secrets / name).write_text(f"{name}-value\n")
    text = (DOCKER_DIR / "acoustid.conf").read_text()
    config = tmp_path / "acoustid.conf"
    config.write_text(text.replace("/run/secrets/", f"{secrets}/"))
    settings = load_settings(path=str(config), environ={})
    assert settings.database.get("app").password == "postgres_password-value"
    assert settings.database.get("ingest").host == "postgres"
    assert settings.redis.password == "redis_password-value"
    assert settings.nats.password == "nats_password-value"
    assert settings.website.secret == "website_secret-value"
    assert list(settings.index.shards) == ["http://index:6081"]
    assert settings.index.name == INDEX_NAME
