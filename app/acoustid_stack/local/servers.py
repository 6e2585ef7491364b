"""Start PostgreSQL, Redis/Valkey and NATS (JetStream) from binaries on loopback ports.

Every function returns a started, ready ManagedProcess; the caller owns stopping it.
"""

from __future__ import annotations

import os
import pwd
import signal
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import psycopg
import redis

from acoustid_stack.errors import UserError
from acoustid_stack.local.binaries import require_binary
from acoustid_stack.local.endpoints import NatsEndpoint, PostgresEndpoint, RedisEndpoint
from acoustid_stack.local.process import ManagedProcess, port_open, run_as

LOOPBACK = "127.0.0.1"
E = TypeVar("E", PostgresEndpoint, RedisEndpoint, NatsEndpoint)


def _unprivileged_user() -> str | None:
    """PostgreSQL refuses to run as root; as root we run it as `postgres` (or `nobody`)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise UserError("running as root and neither user 'postgres' nor 'nobody' exists")


def _chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def _grant_traversal(path: Path) -> None:
    """Let the unprivileged PostgreSQL user reach `path` when root created its parents 0700.

    Adds search permission only (o+x): names inside those folders stay unlistable.
    """
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def postgres_settings(settings: dict[str, str]) -> str:
    return "".join(f"{key} = '{value}'\n" for key, value in settings.items())


def init_postgres(data_dir: Path, *, settings: dict[str, str] | None = None) -> None:
    """initdb with trust auth on loopback, unless `data_dir` already holds a cluster.

    Settings are appended to postgresql.conf because PostgreSQL 15's initdb has no `-c`.
    """
    if (data_dir / "PG_VERSION").exists():
        return
    user = _unprivileged_user()
    data_dir.mkdir(parents=True, exist_ok=True)
    if user:
        _grant_traversal(data_dir)
        _chown_tree(data_dir, user)
    initdb = require_binary("initdb")
    result = subprocess.run(
        [
            str(initdb),
            "-D",
            str(data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ],
        capture_output=True,
        text=True,
        **run_as(user),
        check=False,
    )
    if result.returncode != 0:
        raise UserError(
            f"initdb {data_dir} failed: {result.stderr.strip() or result.stdout.strip()}"
        )
    base = {
        "listen_addresses": LOOPBACK,
        "unix_socket_directories": str(data_dir),
        "fsync": "on",
        "wal_level": "replica",
        "max_wal_senders": "10",
    }
    with (data_dir / "postgresql.conf").open("a") as conf:
        conf.write(postgres_settings(base | (settings or {})))


def _postgres_ready(endpoint: PostgresEndpoint) -> bool:
    if not port_open(endpoint.host, endpoint.port):
        return False
    try:
        with psycopg.connect(endpoint.conninfo(), connect_timeout=1):
            return True
    except psycopg.OperationalError:
        return False


def postgres_process(
    data_dir: Path, port: int, *, log_path: Path, settings: dict[str, str] | None = None
) -> tuple[ManagedProcess, PostgresEndpoint]:
    """An initialised but not started PostgreSQL."""
    init_postgres(data_dir, settings=settings)
    endpoint = PostgresEndpoint(LOOPBACK, port)
    # the log file is opened by us and inherited, so it may live where `user` cannot write
    user = _unprivileged_user()
    process = ManagedProcess(
        name="postgresql",
        argv=[str(require_binary("postgres")), "-D", str(data_dir), "-p", str(port)],
        log_path=log_path,
        ready=lambda: _postgres_ready(endpoint),
        user=user,
        # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every client to leave
        stop_signal=signal.SIGINT,
    )
    return process, endpoint


def start_postgres(
    data_dir: Path,
    port: int,
    *,
    log_path: Path,
    settings: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[ManagedProcess, PostgresEndpoint]:
    return _started(postgres_process(data_dir, port, log_path=log_path, settings=settings), timeout)


def _redis_ready(endpoint: RedisEndpoint) -> bool:
    if not port_open(endpoint.host, endpoint.port):
        return False
    try:
        client = redis.Redis.from_url(endpoint.url(), socket_timeout=1)
        ok = bool(client.ping())
        client.close()
        return ok
    except redis.RedisError:
        return False


def redis_process(
    data_dir: Path,
    port: int,
    *,
    log_path: Path,
    password: str | None = None,
    extra_args: Sequence[str] = (),
) -> tuple[ManagedProcess, RedisEndpoint]:
    """A Redis (or Valkey) server, not started."""
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        str(require_binary("redis-server", "valkey-server")),
        "--port",
        str(port),
        "--bind",
        LOOPBACK,
        "--dir",
        str(data_dir),
        "--daemonize",
        "no",
    ]
    if password:
        argv += ["--requirepass", password]
    argv += list(extra_args)
    endpoint = RedisEndpoint(LOOPBACK, port, password)
    process = ManagedProcess(
        name="redis", argv=argv, log_path=log_path, ready=lambda: _redis_ready(endpoint)
    )
    return process, endpoint


def start_redis(
    data_dir: Path,
    port: int,
    *,
    log_path: Path,
    password: str | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 15.0,
) -> tuple[ManagedProcess, RedisEndpoint]:
    made = redis_process(
        data_dir, port, log_path=log_path, password=password, extra_args=extra_args
    )
    return _started(made, timeout)


def nats_process(
    store_dir: Path,
    port: int,
    *,
    log_path: Path,
    server_name: str = "acoustid-1",
    cluster_port: int | None = None,
    routes: Sequence[int] = (),
    cluster_name: str = "acoustid",
) -> tuple[ManagedProcess, NatsEndpoint]:
    """One nats-server with JetStream, not started; with `cluster_port` and `routes` it joins
    a cluster."""
    store_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        str(require_binary("nats-server")),
        "-a",
        LOOPBACK,
        "-p",
        str(port),
        "-js",
        "-sd",
        str(store_dir),
        "--server_name",
        server_name,
    ]
    if cluster_port is not None:
        argv += ["--cluster_name", cluster_name, "--cluster", f"nats://{LOOPBACK}:{cluster_port}"]
        if routes:
            argv += ["--routes", ",".join(f"nats://{LOOPBACK}:{r}" for r in routes)]
    endpoint = NatsEndpoint(LOOPBACK, port)
    process = ManagedProcess(
        name=f"nats {server_name}",
        argv=argv,
        log_path=log_path,
        ready=lambda: port_open(LOOPBACK, port),
    )
    return process, endpoint


def start_nats(
    store_dir: Path,
    port: int,
    *,
    log_path: Path,
    server_name: str = "acoustid-1",
    cluster_port: int | None = None,
    routes: Sequence[int] = (),
    cluster_name: str = "acoustid",
    timeout: float = 15.0,
) -> tuple[ManagedProcess, NatsEndpoint]:
    made = nats_process(
        store_dir,
        port,
        log_path=log_path,
        server_name=server_name,
        cluster_port=cluster_port,
        routes=routes,
        cluster_name=cluster_name,
    )
    return _started(made, timeout)


def _started(made: tuple[ManagedProcess, E], timeout: float) -> tuple[ManagedProcess, E]:
    process, _ = made
    process.start()
    process.wait_ready(timeout)
    return made
