"""Hand out real PostgreSQL, Redis and NATS JetStream endpoints (DESIGN.md §9).

Each service comes from the first source that works, in this order:
1. a URL in the environment (`ACOUSTID_TEST_POSTGRES_URL`, `_REDIS_URL`, `_NATS_URL`);
2. a server already listening on this machine's default port;
3. a container, when a Docker engine answers (testcontainers);
4. a process started from binaries (PATH, Debian's PostgreSQL, pip packages) on a free
   loopback port.
`ACOUSTID_TEST_SERVICES=container` skips 2 and 4: containers or nothing (the container tests
run integration modules that way). Whatever this object started, `close()` stops.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from acoustid_stack.local.credentials import ensure_secret
from acoustid_stack.local.endpoints import NatsEndpoint, PostgresEndpoint, RedisEndpoint
from acoustid_stack.local.process import ManagedProcess, free_port, port_open
from acoustid_stack.local.servers import (
    LOOPBACK,
    start_nats,
    start_postgres,
    start_redis,
    unprivileged_user,
)

logger = logging.getLogger(__name__)

E = TypeVar("E", PostgresEndpoint, RedisEndpoint, NatsEndpoint)

DEFAULT_PORTS = {"postgres": 5432, "redis": 6379, "nats": 4222}
IMAGES = {"postgres": "postgres:17", "redis": "redis:7", "nats": "nats:2"}


def docker_available() -> bool:
    """True when a Docker engine answers; the docker client alone is not enough."""
    try:
        # imported by name: the repository's own docker/ folder would shadow a plain import
        # for type checkers and for `python -m` run from the checkout
        docker: Any = importlib.import_module("docker")
    except ImportError:
        return False
    if not hasattr(docker, "from_env"):
        return False
    try:
        client = docker.from_env(timeout=2)
        client.ping()
        client.close()
    except Exception:  # any failure means "no engine here"
        return False
    return True


@dataclass(frozen=True)
class _Kind(Generic[E]):
    name: str
    parse: Callable[[str], E]
    default: E
    container: Callable[[], tuple[Any, E]]
    binary: Callable[[Path], tuple[ManagedProcess, E]]


class Services:
    """Lazily resolved endpoints; use as a context manager or call close()."""

    def __init__(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        work_dir: Path | None = None,
        use_running: bool = True,
        use_docker: bool | None = None,
    ) -> None:
        self._environ = os.environ if environ is None else environ
        self._work_dir = work_dir
        self._use_running = use_running
        self._use_docker = use_docker
        if self._environ.get("ACOUSTID_TEST_SERVICES") == "container":
            self._use_running, self._use_docker = False, True
        self._processes: list[ManagedProcess] = []
        self._containers: list[Any] = []
        self._cache: dict[str, Any] = {}
        self._own_dirs: list[Path] = []
        self.sources: dict[str, str] = {}

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def work_dir(self) -> Path:
        if self._work_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix="acoustid-services-"))
        # PostgreSQL runs as an unprivileged user when we are root and must reach its folder
        self._work_dir.chmod(0o755)
        return self._work_dir

    def postgres(self) -> PostgresEndpoint:
        return self._resolve(
            _Kind(
                "postgres",
                PostgresEndpoint.from_url,
                PostgresEndpoint(LOOPBACK, 5432),
                self._postgres_container,
                self._postgres_binary,
            )
        )

    def redis(self) -> RedisEndpoint:
        return self._resolve(
            _Kind(
                "redis",
                RedisEndpoint.from_url,
                RedisEndpoint(LOOPBACK, 6379),
                self._redis_container,
                self._redis_binary,
            )
        )

    def nats(self) -> NatsEndpoint:
        return self._resolve(
            _Kind(
                "nats",
                NatsEndpoint.from_url,
                NatsEndpoint(LOOPBACK, 4222),
                self._nats_container,
                self._nats_binary,
            )
        )

    def _resolve(self, kind: _Kind[E]) -> E:
        if kind.name in self._cache:
            cached: E = self._cache[kind.name]
            return cached
        url = self._environ.get(f"ACOUSTID_TEST_{kind.name.upper()}_URL")
        endpoint: E
        if url:
            endpoint, source = kind.parse(url), "env"
        elif self._use_running and port_open(kind.default.host, kind.default.port):
            endpoint, source = kind.default, "running"
        elif self._use_docker if self._use_docker is not None else docker_available():
            container, endpoint = kind.container()
            self._containers.append(container)
            source = "container"
        else:
            process, endpoint = kind.binary(self.work_dir)
            self._processes.append(process)
            source = "binary"
        logger.info("%s: %s (%s)", kind.name, endpoint, source)
        self._cache[kind.name] = endpoint
        self.sources[kind.name] = source
        return endpoint

    # testcontainers (tests/deploy/containers runs them on a private engine)
    def _postgres_container(self) -> tuple[Any, PostgresEndpoint]:
        from testcontainers.postgres import PostgresContainer  # noqa: PLC0415

        container = PostgresContainer(
            IMAGES["postgres"],
            username="postgres",
            password="postgres",  # noqa: S106 - a throwaway container's  # nosec B106
            driver=None,
        ).start()
        return container, PostgresEndpoint(
            container.get_container_host_ip(),
            int(container.get_exposed_port(5432)),
            "postgres",
            "postgres",
        )

    def _redis_container(self) -> tuple[Any, RedisEndpoint]:
        from testcontainers.redis import RedisContainer  # noqa: PLC0415

        container = RedisContainer(IMAGES["redis"]).start()
        return container, RedisEndpoint(
            container.get_container_host_ip(), int(container.get_exposed_port(6379))
        )

    def _nats_container(self) -> tuple[Any, NatsEndpoint]:
        from testcontainers.nats import NatsContainer  # noqa: PLC0415

        container = NatsContainer(IMAGES["nats"], jetstream=True).start()
        host, port = container.nats_host_and_port()
        return container, NatsEndpoint(host, int(port))

    def _postgres_binary(self, work_dir: Path) -> tuple[ManagedProcess, PostgresEndpoint]:
        # as root PostgreSQL runs as another user, who may not pass the parents of `work_dir`
        # (pytest's basetemp is 0700) and whose permissions are not ours to change: its data
        # goes to a folder of its own in the temporary folder, removed by close()
        data = Path(tempfile.mkdtemp(prefix="acoustid-services-pg-"))
        data.chmod(0o755)
        self._own_dirs.append(data)
        password_file = data / "postgres-password"
        ensure_secret(password_file, owner=unprivileged_user())
        return start_postgres(
            data / "postgres",
            free_port(),
            log_path=work_dir / "postgres.log",
            password_file=password_file,
        )

    def _redis_binary(self, work_dir: Path) -> tuple[ManagedProcess, RedisEndpoint]:
        return start_redis(
            work_dir / "redis",
            free_port(),
            log_path=work_dir / "redis.log",
            extra_args=["--save", "", "--appendonly", "no"],
        )

    def _nats_binary(self, work_dir: Path) -> tuple[ManagedProcess, NatsEndpoint]:
        return start_nats(work_dir / "nats", free_port(), log_path=work_dir / "nats.log")

    def close(self) -> None:
        for process in reversed(self._processes):
            process.stop()
        for container in reversed(self._containers):
            with contextlib.suppress(Exception):
                container.stop()
        self._processes.clear()
        self._containers.clear()
        self._cache.clear()
        for folder in self._own_dirs:
            shutil.rmtree(folder, ignore_errors=True)
        self._own_dirs.clear()
