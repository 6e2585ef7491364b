"""Start PostgreSQL, Redis/Valkey (and Sentinel) and NATS (JetStream) from binaries on loopback
ports.

Every function returns a started, ready ManagedProcess; the caller owns stopping it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import httpx
import psycopg
import redis

from acoustid_stack.errors import UserError
from acoustid_stack.local.binaries import require_binary
from acoustid_stack.local.credentials import NATS_USER, POSTGRES_USER, write_secret
from acoustid_stack.local.endpoints import NatsEndpoint, PostgresEndpoint, RedisEndpoint
from acoustid_stack.local.process import ManagedProcess, port_open, run_as

LOOPBACK = "127.0.0.1"
E = TypeVar("E", PostgresEndpoint, RedisEndpoint, NatsEndpoint, str)


def unprivileged_user() -> str | None:
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


def chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def grant_traversal(path: Path, *, up_to: Path) -> None:
    """Let the unprivileged PostgreSQL user reach `path` (issue 17 item 2).

    Its parents inside `up_to` (the data folder: ours) get search permission (o+x) where they
    lack it; names inside stay unlistable. A folder above `up_to` is never changed: one the
    user cannot pass is an error naming it and the fix.
    """
    user = unprivileged_user()
    if user is None:
        return
    inside = up_to.resolve()
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if parent.is_relative_to(inside):
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)
        elif not _passable(parent, user):
            raise UserError(
                f"{user}, the user PostgreSQL runs as, cannot enter {parent} (mode "
                f"{stat.S_IMODE(mode):o}): use a --data-dir it can reach (e.g. under /var/lib "
                f"or /srv), or allow it with `chmod o+x {parent}`"
            )


def _passable(folder: Path, user: str) -> bool:
    """Whether `user` (with its primary group only, as run_as starts it) may enter `folder`."""
    info, entry = folder.stat(), pwd.getpwnam(user)
    if info.st_uid == entry.pw_uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == entry.pw_gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _hidden_from_others(path: Path) -> bool:
    return any(not parent.stat().st_mode & stat.S_IXOTH for parent in path.resolve().parents)


def postgres_binary(program: str, *, beside: Path, prefer_pip: bool) -> Path:
    """`program` of one PostgreSQL installation, runnable by the unprivileged user.

    A pip install under /root (0700) is out of that user's reach; then its package folder
    (and the `<package>.libs` folder its RPATH points at) is staged once next to the data
    folder, as hard links where the file system allows.
    """
    found = require_binary(program, prefer_pip=prefer_pip).resolve()
    if unprivileged_user() is None or not _hidden_from_others(found):
        return found
    package = found.parent.parent.parent  # <site-packages>/<package>/pginstall/bin/<program>
    staged = beside / f"postgresql-{package.stat().st_ino}"
    if not (staged / found.relative_to(package.parent)).exists():
        shutil.rmtree(staged, ignore_errors=True)
        for folder in (package, package.with_name(f"{package.name}.libs")):
            if folder.is_dir():
                _copy_tree(folder, staged / folder.name)
        grant_traversal(staged / package.name, up_to=beside)
    return staged / found.relative_to(package.parent)


def _copy_tree(source: Path, target: Path) -> None:
    try:
        shutil.copytree(source, target, copy_function=os.link, symlinks=True)
    except OSError:  # another file system: hard links cannot cross it
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, symlinks=True)


def postgres_settings(settings: dict[str, str]) -> str:
    return "".join(f"{key} = '{value}'\n" for key, value in settings.items())


def init_postgres(
    data_dir: Path,
    *,
    password_file: Path,
    settings: dict[str, str] | None = None,
    prefer_pip: bool = False,
) -> None:
    """initdb, unless `data_dir` already holds a cluster: superuser `postgres` with the
    password in `password_file`, scram-sha-256 for every connection, the Unix socket included
    (any local account could otherwise connect as superuser, and run programs through
    `COPY ... TO PROGRAM`).

    Settings are appended to postgresql.conf because PostgreSQL 15's initdb has no `-c`.
    A cluster made before passwords (`--auth=trust`) gets them on its next start.
    """
    if (data_dir / "PG_VERSION").exists():
        _end_trust(data_dir, password_file=password_file, prefer_pip=prefer_pip)
        return
    user = unprivileged_user()
    data_dir.mkdir(parents=True, exist_ok=True)
    if user:
        grant_traversal(data_dir, up_to=data_dir.parent)
        chown_tree(data_dir, user)
    initdb = postgres_binary("initdb", beside=data_dir.parent, prefer_pip=prefer_pip)
    result = subprocess.run(
        [
            str(initdb),
            "-D",
            str(data_dir),
            "-U",
            POSTGRES_USER,
            f"--pwfile={password_file}",
            "--auth=scram-sha-256",
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
        "password_encryption": "scram-sha-256",  # a method, not a password  # nosec B105
    }
    with (data_dir / "postgresql.conf").open("a") as conf:
        conf.write(postgres_settings(base | (settings or {})))


#: pg_hba.conf of a cluster that trusted every local account, after _end_trust
SCRAM_HBA = (
    "# Written by acoustid-stack: every connection logs in with a password.\n"
    "local   all             all                                     scram-sha-256\n"
    "host    all             all             127.0.0.1/32            scram-sha-256\n"
    "host    all             all             ::1/128                 scram-sha-256\n"
    "local   replication     all                                     scram-sha-256\n"
    "host    replication     all             127.0.0.1/32            scram-sha-256\n"
    "host    replication     all             ::1/128                 scram-sha-256\n"
)


def _end_trust(data_dir: Path, *, password_file: Path, prefer_pip: bool) -> None:
    """Give a stopped cluster whose pg_hba.conf trusts anyone (stacks made before issue 17)
    the superuser password in `password_file` (single-user mode, the statement on stdin, never
    on a command line) and scram-sha-256 for every connection."""
    hba = data_dir / "pg_hba.conf"
    rules = [line.split() for line in hba.read_text().splitlines() if line.strip()]
    if not any(rule[-1] == "trust" for rule in rules if not rule[0].startswith("#")):
        return
    password = password_file.read_text().strip().replace("'", "''")
    single = subprocess.run(
        [
            str(postgres_binary("postgres", beside=data_dir.parent, prefer_pip=prefer_pip)),
            "--single",
            "-D",
            str(data_dir),
            "postgres",
        ],
        input=f"ALTER ROLE {POSTGRES_USER} PASSWORD '{password}'\n",
        capture_output=True,
        text=True,
        cwd="/",
        check=False,
        **run_as(unprivileged_user()),
    )
    if single.returncode != 0 or "ERROR" in single.stdout + single.stderr:
        raise UserError(
            f"setting the PostgreSQL password of {data_dir} failed: "
            f"{(single.stderr or single.stdout).strip().splitlines()[-1:]}"
        )
    hba.write_text(SCRAM_HBA)


def _postgres_ready(endpoint: PostgresEndpoint) -> bool:
    if not port_open(endpoint.host, endpoint.port):
        return False
    try:
        with psycopg.connect(endpoint.conninfo(), connect_timeout=1):
            return True
    except psycopg.OperationalError:
        return False


def postgres_process(
    data_dir: Path,
    port: int,
    *,
    log_path: Path,
    password_file: Path,
    settings: dict[str, str] | None = None,
    prefer_pip: bool = False,
) -> tuple[ManagedProcess, PostgresEndpoint]:
    """An initialised but not started PostgreSQL whose superuser's password is in
    `password_file` (a new cluster gets it; an existing one must have it already)."""
    init_postgres(data_dir, password_file=password_file, settings=settings, prefer_pip=prefer_pip)
    endpoint = PostgresEndpoint(
        LOOPBACK, port, POSTGRES_USER, password_file.read_text().strip() or None
    )
    # the log file is opened by us and inherited, so it may live where `user` cannot write
    user = unprivileged_user()
    process = ManagedProcess(
        name="postgresql",
        argv=[
            str(postgres_binary("postgres", beside=data_dir.parent, prefer_pip=prefer_pip)),
            "-D",
            str(data_dir),
            "-p",
            str(port),
        ],
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
    password_file: Path,
    settings: dict[str, str] | None = None,
    timeout: float = 30.0,
    prefer_pip: bool = False,
) -> tuple[ManagedProcess, PostgresEndpoint]:
    made = postgres_process(
        data_dir,
        port,
        log_path=log_path,
        password_file=password_file,
        settings=settings,
        prefer_pip=prefer_pip,
    )
    return _started(made, timeout)


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


def _redis_server(prefer_pip: bool) -> Path:
    return require_binary("redis-server", "valkey-server", prefer_pip=prefer_pip)


def redis_process(
    data_dir: Path,
    port: int,
    *,
    log_path: Path,
    password: str | None = None,
    extra_args: Sequence[str] = (),
    prefer_pip: bool = False,
    binary: Path | None = None,
) -> tuple[ManagedProcess, RedisEndpoint]:
    """A Redis (or Valkey) server, not started; `binary` names the server program. With
    `password`, clients must AUTH with it (`requirepass`, read from a 0600 config file in
    `data_dir`: on the command line `ps` would show it)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [str(binary or _redis_server(prefer_pip))]
    if password:
        config = data_dir / "auth.conf"
        write_secret(config, f'requirepass "{password}"\n')
        argv.append(str(config))
    argv += [
        "--port",
        str(port),
        "--bind",
        LOOPBACK,
        "--dir",
        str(data_dir),
        "--daemonize",
        "no",
    ]
    argv += list(extra_args)
    endpoint = RedisEndpoint(LOOPBACK, port, password)
    process = ManagedProcess(
        name="redis", argv=argv, log_path=log_path, ready=lambda: _redis_ready(endpoint)
    )
    return process, endpoint


def sentinel_process(
    work_dir: Path,
    port: int,
    *,
    master_port: int,
    log_path: Path,
    master_name: str = "acoustid",
    quorum: int = 2,
    down_after_ms: int = 1000,
    failover_timeout_ms: int = 10_000,
    prefer_pip: bool = False,
) -> tuple[ManagedProcess, RedisEndpoint]:
    """A Redis Sentinel (`redis-server --sentinel`) watching the master on `master_port`,
    not started; it finds the replicas and the other sentinels through that master.

    Sentinel rewrites its configuration file as it learns, so the file lives in `work_dir`.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    config = work_dir / "sentinel.conf"
    config.write_text(
        f"port {port}\n"
        f"bind {LOOPBACK}\n"
        f"dir {work_dir}\n"
        f"sentinel monitor {master_name} {LOOPBACK} {master_port} {quorum}\n"
        f"sentinel down-after-milliseconds {master_name} {down_after_ms}\n"
        f"sentinel failover-timeout {master_name} {failover_timeout_ms}\n"
    )
    argv = [str(_redis_server(prefer_pip)), str(config), "--sentinel", "--daemonize", "no"]
    endpoint = RedisEndpoint(LOOPBACK, port)
    process = ManagedProcess(
        name=f"sentinel {port}",
        argv=argv,
        log_path=log_path,
        ready=lambda: _redis_ready(endpoint),
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
    prefer_pip: bool = False,
) -> tuple[ManagedProcess, RedisEndpoint]:
    made = redis_process(
        data_dir,
        port,
        log_path=log_path,
        password=password,
        extra_args=extra_args,
        prefer_pip=prefer_pip,
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
    password: str | None = None,
    prefer_pip: bool = False,
) -> tuple[ManagedProcess, NatsEndpoint]:
    """One nats-server with JetStream, not started; with `cluster_port` and `routes` it joins
    a cluster. With `password`, clients must log in as NATS_USER with it (an authorization
    block in a 0600 config file in `store_dir`, never on the command line)."""
    store_dir.mkdir(parents=True, exist_ok=True)
    argv = [str(require_binary("nats-server", prefer_pip=prefer_pip))]
    if password:
        config = store_dir / "auth.conf"
        write_secret(
            config, f'authorization {{\n  user: "{NATS_USER}"\n  password: "{password}"\n}}\n'
        )
        argv += ["-c", str(config)]
    argv += [
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


def http_ok(url: str) -> bool:
    """True when `url` answers 200 within a second."""
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def index_process(
    data_dir: Path,
    port: int,
    *,
    log_path: Path,
    create: Sequence[str] = ("fingerprints",),
    env: Mapping[str, str] | None = None,
) -> tuple[ManagedProcess, str]:
    """Our index server (`acoustid-stack run index`) on loopback, not started; its base URL.

    Runs on this interpreter (`python -m acoustid_stack`), so a child never picks up another
    installation's script from PATH.
    """
    url = f"http://{LOOPBACK}:{port}"
    argv = [sys.executable, "-m", "acoustid_stack", "run", "index", "--dir", str(data_dir)]
    argv += ["--host", LOOPBACK, "--port", str(port)]
    for name in create:
        argv += ["--create", name]
    process = ManagedProcess(
        name="index",
        argv=argv,
        log_path=log_path,
        ready=lambda: http_ok(f"{url}/_health"),
        env=env,
    )
    return process, url


@contextlib.contextmanager
def running(made: tuple[ManagedProcess, E], timeout: float = 30.0) -> Iterator[E]:
    """Start a process built by one of the `*_process` functions, yield its endpoint, stop it."""
    process, endpoint = made
    process.start()
    try:
        process.wait_ready(timeout)
        yield endpoint
    finally:
        process.stop()


def _started(made: tuple[ManagedProcess, E], timeout: float) -> tuple[ManagedProcess, E]:
    process, _ = made
    process.start()
    process.wait_ready(timeout)
    return made
