"""The stack a drill breaks: PostgreSQL primary + streaming replica archiving WAL to a
backup repository, Redis with AOF, a 3-node NATS JetStream cluster (stream R3), two
index shards, api, two workers and cron — all in one throwaway data folder.

Two sets of servers, as users run them: `debian` (Debian's PostgreSQL 15 backed up by
pgBackRest and Redis 7: the Ansible face) and `pip` (the `local` extra's PostgreSQL 18
backed up by pg_basebackup + basic_archive and Valkey 9: what `acoustid-stack up` runs).
NATS is the nats-server found first (PATH, else the pip one) in both.
"""

from __future__ import annotations

import asyncio
import configparser
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

import httpx

from acoustid_stack.config import Settings, load_settings
from acoustid_stack.db.migrate import upgrade
from acoustid_stack.errors import UserError
from acoustid_stack.local.bootstrap import ensure_local_application
from acoustid_stack.local.credentials import StackSecrets
from acoustid_stack.local.process import ManagedProcess, free_port, port_open, run_as
from acoustid_stack.local.servers import (
    LOOPBACK,
    chown_tree,
    grant_traversal,
    init_postgres,
    nats_process,
    postgres_binary,
    postgres_process,
    redis_process,
    unprivileged_user,
)
from acoustid_stack.local.stack import Layout, write_config
from acoustid_stack.ops.interfaces import Cluster
from acoustid_stack.ops.layout import BackupRepository, StackFiles
from acoustid_stack.ops.postgres_backups import Tool, configure_backups
from acoustid_stack.submissions.connection import Reconnect, connect_nats
from acoustid_stack.submissions.stream import ensure_stream

logger = logging.getLogger(__name__)

NATS_NODES = 3
INDEX_SHARDS = 2
WORKERS = 2
#: Short enough for an RPO well under the 60 s target on a quiet cluster (hosts: 30 s).
ARCHIVE_TIMEOUT = "10s"
RESTARTS = 3
WATCH_INTERVAL = 0.5
WORKER_SERVICES = tuple(f"worker-{i}" for i in range(1, WORKERS + 1))
APP_SERVICES = ("api", *WORKER_SERVICES, "cron")
INDEX_SERVICES = tuple(f"index-{i}" for i in range(1, INDEX_SHARDS + 1))
NATS_SERVICES = tuple(f"nats-{i}" for i in range(1, NATS_NODES + 1))
PORT_NAMES = (
    "postgresql",
    "postgresql-replica",
    "redis",
    *NATS_SERVICES,
    *(f"{n}-cluster" for n in NATS_SERVICES),
    *INDEX_SERVICES,
    "api",
    "web",
)


ServerSet = Literal["debian", "pip"]
SERVER_SETS: tuple[ServerSet, ...] = ("debian", "pip")
#: the backup tool each server set is backed up with
BACKUP_TOOLS: dict[ServerSet, Tool] = {"debian": "pgbackrest", "pip": "basebackup"}


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


class DrillStack:
    """Create with `DrillStack(root)`, then `start()`; `close()` stops every process."""

    def __init__(self, root: Path, *, servers: ServerSet = "debian") -> None:
        self.servers = servers
        self.prefer_pip = servers == "pip"
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        # PostgreSQL runs as an unprivileged user when we are root and must reach its folders
        self.root.chmod(0o755)
        grant_traversal(self.root, up_to=self.root)
        self.files = StackFiles(self.root)
        self.repo = BackupRepository(self.root / "backup")
        # Unix socket paths are limited to 107 bytes: a short folder outside the data folder
        digest = hashlib.sha1(str(self.root).encode(), usedforsecurity=False).hexdigest()[:12]
        self.socket_dir = Path(tempfile.gettempdir()) / f"acoustid-drill-{digest}"
        if not self.files.ports_file.exists():
            self.files.save_ports({name: free_port() for name in PORT_NAMES})
        self.ports = self.files.ports()
        self.processes: dict[str, ManagedProcess] = {}
        self.restarts: list[tuple[float, str]] = []
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="drill-watchdog", daemon=True)
        self.client_key = ""
        self.user_key = ""
        self._write_config()

    # ---- configuration -----------------------------------------------------------------

    def _write_config(self) -> None:
        ports = {
            "postgresql": self.ports["postgresql"],
            "redis": self.ports["redis"],
            "nats": self.ports["nats-1"],
            "index": self.ports["index-1"],
            "api": self.ports["api"],
            "web": self.ports["web"],
        }
        write_config(Layout(self.root), ports, database_prefix="acoustid")
        ini = configparser.ConfigParser(interpolation=None)
        ini.read(self.files.config)
        ini["nats"]["servers"] = ",".join(
            f"nats://{LOOPBACK}:{self.ports[n]}" for n in NATS_SERVICES
        )
        ini["nats"]["replicas"] = str(NATS_NODES)
        ini["index"]["shards"] = ",".join(
            f"http://{LOOPBACK}:{self.ports[n]}" for n in INDEX_SERVICES
        )
        # the drill's writer and verifier are one client on one address
        ini["rate_limit"] = {"global": "1000", "ip": "1000", "application": "1000"}
        with self.files.config.open("w") as handle:
            ini.write(handle)

    @property
    def secrets(self) -> StackSecrets:
        return Layout(self.root).secrets

    @property
    def settings(self) -> Settings:
        """Settings as the app reads them now (a failover rewrites the config)."""
        return load_settings(str(self.files.config))

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports['api']}"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "ACOUSTID_CONFIG": str(self.files.config)}

    # ---- process factories -------------------------------------------------------------

    def _postgres(self, name: str) -> ManagedProcess:
        data = self.files.server_dir(name)
        process, _ = postgres_process(
            data,
            self.ports[name],
            log_path=self.files.logs / f"{name}.log",
            password_file=self.secrets.postgresql,
            prefer_pip=self.prefer_pip,
        )
        self.socket_dir.mkdir(exist_ok=True)
        user = unprivileged_user()
        if user:
            chown_tree(self.socket_dir, user)
        process.argv += ["-c", f"unix_socket_directories={self.socket_dir}"]
        return process

    def _make(self, name: str) -> ManagedProcess:
        log = self.files.logs / f"{name}.log"
        if name.startswith("postgresql"):
            return self._postgres(name)
        if name == "redis":
            args = ["--appendonly", "yes", "--appendfsync", "everysec"]
            return redis_process(
                self.files.server_dir(name),
                self.ports[name],
                log_path=log,
                password=self.secrets.redis.read_text().strip(),
                extra_args=args,
                prefer_pip=self.prefer_pip,
            )[0]
        if name in NATS_SERVICES:
            others = [self.ports[f"{n}-cluster"] for n in NATS_SERVICES if n != name]
            return nats_process(
                self.files.server_dir(name),
                self.ports[name],
                log_path=log,
                server_name=name,
                cluster_port=self.ports[f"{name}-cluster"],
                routes=others,
                password=self.secrets.nats.read_text().strip(),
                prefer_pip=self.prefer_pip,
            )[0]
        if name in INDEX_SERVICES:
            argv = ["run", "index", "--dir", str(self.files.server_dir(name))]
            argv += ["--port", str(self.ports[name]), "--create", "fingerprints"]
            return self._app(name, argv, health=f"http://{LOOPBACK}:{self.ports[name]}/_health")
        if name not in APP_SERVICES:
            raise UserError(f"the drill stack has no service {name!r}")
        if name == "api":
            return self._app(
                name, ["run", "api", "--workers", "1"], health=f"{self.api_url}/_health"
            )
        return self._app(name, ["run", name.partition("-")[0]])  # worker-N, cron

    def _app(self, name: str, args: list[str], *, health: str | None = None) -> ManagedProcess:
        ready: Callable[[], bool] = (lambda: _http_ok(health)) if health else (lambda: True)
        return ManagedProcess(
            name=name,
            argv=[sys.executable, "-m", "acoustid_stack", *args],
            log_path=self.files.logs / f"{name}.log",
            ready=ready,
            env=self.env,
        )

    # ---- service manager ---------------------------------------------------------------

    def start_service(self, name: str) -> None:
        self.start_services([name])

    def start_services(self, names: Iterable[str]) -> None:
        """Start several at once and wait for all (app processes take seconds to import).

        Like systemd's Restart=on-failure, a process that dies during start-up is started
        again (up to RESTARTS times): a worker may start before its R3 consumer has a leader.
        """
        started = []
        with self._lock:
            for name in names:
                process = self._make(name)
                self.processes[name] = process
                process.start()
                started.append(process)
        for process in started:
            for attempt in range(RESTARTS + 1):
                try:
                    process.wait_ready(90.0)
                    break
                except UserError:
                    if attempt == RESTARTS:
                        raise
                    logger.warning("%s failed to start; starting it again", process.name)
                    process.stop()
                    time.sleep(1.0)
                    process.start()

    def stop_services(self, names: Iterable[str]) -> None:
        for name in names:
            with self._lock:
                process = self.processes.pop(name, None)
            if process is not None:
                process.stop()

    def pids(self, names: Iterable[str]) -> dict[str, int | None]:
        """The process id of each service now (None: not running)."""
        with self._lock:
            running = {name: self.processes.get(name) for name in names}
        return {n: p.pid if p is not None and p.running() else None for n, p in running.items()}

    def kill(self, name: str) -> None:
        """kill -9, as a crashed host would."""
        with self._lock:
            process = self.processes.pop(name, None)
        if process is not None:
            process.kill()

    def _watch(self) -> None:
        """Restart api, workers and cron when they exit, as systemd's Restart=always does on
        hosts (servers holding data are left to the runbook)."""
        while not self._closing.wait(WATCH_INTERVAL):
            with self._lock:
                for name in APP_SERVICES:
                    process = self.processes.get(name)
                    if process is not None and not process.running():
                        logger.warning("%s exited; restarting it", name)
                        self.restarts.append((time.time(), name))
                        process.stop()
                        process.start()

    def wipe(self, name: str) -> None:
        """Delete a server's data folder, as a lost disk would."""
        shutil.rmtree(self.files.server_dir(name), ignore_errors=True)

    def close(self) -> None:
        self._closing.set()
        if self._watchdog.is_alive():
            self._watchdog.join(5)
        for name in reversed(list(self.processes)):
            self.stop_services([name])
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    # ---- building it -------------------------------------------------------------------

    def start(self) -> None:
        """Primary with WAL archiving, first full backup, replica, Redis, NATS, migrations,
        then the index shards and the app."""
        primary = self.files.server_dir("postgresql")
        backups = configure_backups(
            self.repo,
            Cluster(primary, self.ports["postgresql"], self.socket_dir),
            BACKUP_TOOLS[self.servers],
        )
        archiving = backups.archive_settings() | {
            "archive_timeout": ARCHIVE_TIMEOUT,
            "wal_keep_size": "256MB",
            "hot_standby": "on",
            # api, workers and cron each pool connections to three databases
            "max_connections": "300",
        }
        init_postgres(
            primary,
            password_file=self.secrets.postgresql,
            settings=archiving,
            prefer_pip=self.prefer_pip,
        )
        self.start_services(["postgresql", "redis", *NATS_SERVICES])
        settings = self.settings
        self.wait_for_jetstream()
        for _ in upgrade(settings.database):
            pass
        self.client_key, self.user_key = ensure_local_application(settings)
        backups.prepare()
        backups.backup("full")
        self.clone_replica()
        self.start_services(INDEX_SERVICES)
        self.start_services(APP_SERVICES)
        self._watchdog.start()

    def wait_for_jetstream(self, timeout: float = 30.0) -> None:
        """Until the cluster has elected its JetStream leader and holds the R3 stream, so the
        app starts on a ready cluster (workers would wait for it; cron would exit)."""
        settings = self.settings

        async def ready() -> bool:
            try:
                nc = await connect_nats(settings.nats, reconnect=Reconnect.FAIL_FAST)
            except Exception:  # not reachable yet
                return False
            try:
                await ensure_stream(nc.jetstream(), settings.nats)
                return True
            except Exception:  # no JetStream leader yet
                return False
            finally:
                await nc.close()

        self.wait_for(lambda: asyncio.run(ready()), "a JetStream leader", timeout)

    def clone_replica(self) -> None:
        """pg_basebackup -R from the primary into postgresql-replica, then start it (its
        primary_conninfo names the stack's pgpass)."""
        primary = Cluster(self.files.server_dir("postgresql"), self.ports["postgresql"])
        target = self.files.server_dir("postgresql-replica")
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        target.chmod(0o700)
        user = unprivileged_user()
        if user:
            chown_tree(target, user)
        # from the same installation as the server: /usr/bin's wrapper may pick another version
        server = postgres_binary("postgres", beside=self.root, prefer_pip=self.prefer_pip)
        basebackup = server.with_name("pg_basebackup")
        result = subprocess.run(
            [
                str(basebackup),
                "-d",
                primary.conninfo(),
                "-D",
                str(target),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=primary.tool_env(),
            **run_as(user),
        )
        if result.returncode != 0:
            raise UserError(f"pg_basebackup failed: {result.stderr.strip()}")
        self.start_service("postgresql-replica")

    def wait_for(self, check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.2)
        raise UserError(f"drill: {what} not reached within {timeout:.0f} s")

    def nats_up(self, name: str) -> bool:
        return port_open(LOOPBACK, self.ports[name])
