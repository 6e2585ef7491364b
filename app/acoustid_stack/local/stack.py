"""The whole service on one machine: which processes, on which ports, with which config.

Everything lives in one data folder, so a second `acoustid-stack up` resumes with all
data kept: PostgreSQL, Redis, NATS and index data, logs, the chosen ports, the generated
config and secrets.
"""

from __future__ import annotations

import configparser
import dataclasses
import json
import os
import sys
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from acoustid_stack.local.credentials import NATS_USER, StackSecrets, ensure_secret
from acoustid_stack.local.process import ManagedProcess, free_port, port_open
from acoustid_stack.local.servers import (
    LOOPBACK,
    http_ok,
    index_process,
    nats_process,
    postgres_process,
    redis_process,
    unprivileged_user,
)
from acoustid_stack.local.supervisor import Service
from acoustid_stack.ops.interfaces import Cluster
from acoustid_stack.ops.layout import BackupRepository
from acoustid_stack.ops.postgres_backups import configure_backups
from acoustid_stack.sizing import Profile, load_sizing

DEFAULT_PORTS = {
    "postgresql": 15432,
    "redis": 16379,
    "nats": 14222,
    "index": 6081,
    "api": 5000,
    "web": 5001,
}
SYSTEM_PORTS = {"postgresql": 5432, "redis": 6379, "nats": 4222}
#: a quiet PostgreSQL still archives its WAL this often: at most this much is lost when the
#: data folder is (RPO); hosts use the same
ARCHIVE_TIMEOUT = "30s"
INFRASTRUCTURE = ("postgresql", "redis", "nats")
INDEX_NAME = "fingerprints"


#: root's data folder: PostgreSQL runs as another user, who cannot enter /root (0700)
ROOT_DATA_DIR = Path("/var/lib/acoustid-stack")


def default_data_dir() -> Path:
    if os.geteuid() == 0:
        return ROOT_DATA_DIR
    return Path(platformdirs.user_data_dir("acoustid-stack", appauthor=False))


@dataclass(frozen=True)
class StackOptions:
    data_dir: Path
    use_system_services: bool = False
    profile: str | None = None
    api_workers: int = 2
    workers: int = 2


@dataclass(frozen=True)
class Layout:
    """Where each piece lives inside the data folder."""

    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def config(self) -> Path:
        return self.root / "acoustid.conf"

    @property
    def ports(self) -> Path:
        return self.root / "ports.json"

    @property
    def secret(self) -> Path:
        return self.root / "website-secret"

    @property
    def secrets(self) -> StackSecrets:
        return StackSecrets(self.root)

    @property
    def index_snapshots(self) -> Path:
        return self.root / "index-snapshots"

    @property
    def backups(self) -> Path:
        """The backup repository `acoustid-stack backup …` uses by default."""
        return self.root / "backup"

    def service_dir(self, name: str) -> Path:
        return self.root / name


def stack_ports(layout: Layout, *, use_system_services: bool) -> dict[str, int]:
    """Ports chosen on the first `up` and kept, so clients' URLs survive a restart.

    A default port that something else holds is replaced by a free one.
    """
    try:
        ports: dict[str, int] = json.loads(layout.ports.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        ports = {}
    for name, default in DEFAULT_PORTS.items():
        if use_system_services and name in SYSTEM_PORTS:
            ports[name] = SYSTEM_PORTS[name]
        elif name not in ports:
            ports[name] = default if not port_open(LOOPBACK, default) else free_port()
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.ports.write_text(json.dumps(ports, indent=2))
    return ports


def write_config(
    layout: Layout,
    ports: dict[str, int],
    *,
    database_prefix: str,
    index_snapshots: bool = False,
    protected: Collection[str] = INFRASTRUCTURE,
) -> Path:
    """The acoustid.conf every child process reads (ACOUSTID_CONFIG); with `index_snapshots`,
    cron keeps index snapshots in the data folder.

    The servers named in `protected` are ours, started with the passwords of the data folder
    (made on the first start): the config names those files. Servers found running
    (--use-system-services) are used as they are.
    """
    secrets = layout.secrets
    secrets.ensure(postgres_owner=unprivileged_user())
    ensure_secret(layout.secret)
    ini = configparser.ConfigParser()
    ini["database"] = {"host": LOOPBACK, "port": str(ports["postgresql"]), "user": "postgres"}
    if "postgresql" in protected:
        ini["database"]["password_file"] = str(secrets.postgresql)
    for name in ("app", "fingerprint", "ingest"):
        ini[f"database.{name}"] = {"name": f"{database_prefix}_{name}"}
    ini["redis"] = {"host": LOOPBACK, "port": str(ports["redis"])}
    if "redis" in protected:
        ini["redis"]["password_file"] = str(secrets.redis)
    ini["nats"] = {"servers": f"nats://{LOOPBACK}:{ports['nats']}"}
    if "nats" in protected:
        ini["nats"].update(user=NATS_USER, password_file=str(secrets.nats))
    ini["index"] = {"shards": f"http://{LOOPBACK}:{ports['index']}", "name": INDEX_NAME}
    if index_snapshots:
        ini["index"]["snapshot_dir"] = str(layout.index_snapshots)
    ini["api"] = {"host": LOOPBACK, "port": str(ports["api"])}
    ini["web"] = {"host": LOOPBACK, "port": str(ports["web"])}
    ini["website"] = {
        "secret_file": str(layout.secret),
        "base_url": f"http://{LOOPBACK}:{ports['web']}",
        "shutdown_delay": "0",
        "shutdown_file": str(layout.root / "shutdown"),
    }
    with layout.config.open("w") as handle:
        handle.write("# Written by `acoustid-stack up`; edits are replaced on the next start.\n")
        ini.write(handle)
    return layout.config


def scaled_to_machine(profile: Profile) -> Profile:
    """The profile shrunk, all components alike, until it fits this machine's cores and RAM."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cores = os.cpu_count() or 1
    totals = profile.totals
    factor = min(1.0, memory / totals.memory, cores / totals.cpu)
    components = {
        name: dataclasses.replace(size, cpu=size.cpu * factor, memory=int(size.memory * factor))
        for name, size in profile.components.items()
    }
    return dataclasses.replace(profile, components=components)


class Stack:
    """Builds the supervised services of one local stack."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.layout = Layout(options.data_dir)
        self.ports = stack_ports(self.layout, use_system_services=options.use_system_services)
        # with --use-system-services, servers already listening are used as they are
        self.supervised_infrastructure = tuple(
            name
            for name in INFRASTRUCTURE
            if not (options.use_system_services and port_open(LOOPBACK, self.ports[name]))
        )
        # system services are shared with other users: keep our databases apart by name
        prefix = "acoustid_local" if options.use_system_services else "acoustid"
        self.config_path = write_config(
            self.layout,
            self.ports,
            database_prefix=prefix,
            index_snapshots=True,
            protected=self.supervised_infrastructure,
        )
        self.env = {**os.environ, "ACOUSTID_CONFIG": str(self.config_path)}

    def url(self, name: str) -> str:
        scheme = "nats" if name == "nats" else "http"
        if name == "postgresql":
            return f"postgresql://postgres@{LOOPBACK}:{self.ports[name]}"
        if name == "redis":
            return f"redis://{LOOPBACK}:{self.ports[name]}"
        return f"{scheme}://{LOOPBACK}:{self.ports[name]}"

    def infrastructure(self) -> list[Service]:
        """PostgreSQL, Redis, NATS: embedded unless --use-system-services finds them running."""
        return [
            Service(
                name=name,
                process=self._infrastructure_process(name),
                port=self.ports[name],
                url=self.url(name),
            )
            for name in self.supervised_infrastructure
        ]

    def _infrastructure_process(self, name: str) -> ManagedProcess:
        prefer_pip = not self.options.use_system_services
        log = self.layout.logs / f"{name}.log"
        data = self.layout.service_dir(name)
        derived = None
        if self.options.profile:
            derived = scaled_to_machine(load_sizing().profile(self.options.profile)).derived
        if name == "postgresql":
            settings = derived.postgresql.parameters() if derived else None
            process = postgres_process(
                data,
                self.ports[name],
                log_path=log,
                password_file=self.layout.secrets.postgresql,
                settings=settings,
                prefer_pip=prefer_pip,
            )[0]
            # on the command line, not in postgresql.conf: a stack made before it archives too
            backups = configure_backups(
                BackupRepository(self.layout.backups), Cluster(data, self.ports[name]), "basebackup"
            )
            archiving = backups.archive_settings() | {"archive_timeout": ARCHIVE_TIMEOUT}
            for key, value in archiving.items():
                process.argv += ["-c", f"{key}={value}"]
            return process
        if name == "redis":
            extra = ["--appendonly", "yes", "--appendfsync", "everysec"]
            if derived:
                for key, value in derived.redis.directives().items():
                    extra += [f"--{key}", value]
            return redis_process(
                data,
                self.ports[name],
                log_path=log,
                password=self.layout.secrets.redis.read_text().strip(),
                extra_args=extra,
                prefer_pip=prefer_pip,
            )[0]
        return nats_process(
            data,
            self.ports[name],
            log_path=log,
            password=self.layout.secrets.nats.read_text().strip(),
            prefer_pip=prefer_pip,
        )[0]

    def _command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "acoustid_stack", *args]

    def _app_service(
        self,
        name: str,
        args: list[str],
        *,
        depends_on: tuple[str, ...],
        port: int | None = None,
        health: str | None = None,
    ) -> Service:
        ready_url = f"http://{LOOPBACK}:{port}{health}" if port and health else None
        process = ManagedProcess(
            name=name,
            argv=self._command(*args),
            log_path=self.layout.logs / f"{name}.log",
            ready=(lambda: http_ok(ready_url)) if ready_url else (lambda: True),
            env=self.env,
        )
        return Service(
            name=name,
            process=process,
            depends_on=depends_on,
            port=port,
            url=f"http://{LOOPBACK}:{port}" if port else None,
            start_timeout=60.0,
        )

    def application(self) -> list[Service]:
        """Index, api, workers, cron and web, started after the databases are migrated."""
        infra = self.supervised_infrastructure
        index, index_url = index_process(
            self.layout.service_dir("index"),
            self.ports["index"],
            log_path=self.layout.logs / "index.log",
            create=(INDEX_NAME,),
            env=self.env,
        )
        services = [
            Service(
                name="index",
                process=index,
                port=self.ports["index"],
                url=index_url,
                start_timeout=60.0,
            ),
            self._app_service(
                "api",
                ["run", "api", "--workers", str(self.options.api_workers)],
                depends_on=("index", *infra),
                port=self.ports["api"],
                health="/_health",
            ),
        ]
        services += [
            self._app_service(f"worker-{i + 1}", ["run", "worker"], depends_on=("index", *infra))
            for i in range(self.options.workers)
        ]
        services += [
            self._app_service("cron", ["run", "cron"], depends_on=infra),
            self._app_service(
                "web", ["run", "web"], depends_on=infra, port=self.ports["web"], health="/_health"
            ),
        ]
        return services
