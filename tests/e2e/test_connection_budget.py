"""The PostgreSQL connection budget holds under load: real api (two uvicorn workers), worker,
cron and web processes, 64 concurrent lookups and 64 concurrent submissions, and
pg_stat_activity sampled throughout; no process and no pod ever holds more connections than
sizing.py budgets for it (`PROCESS_CONNECTIONS`, `pod_connections`).

A backend is attributed to a process through its client port: /proc maps each socket a
process holds to PostgreSQL's port to its local port. Only sockets to PostgreSQL count, since
Linux gives the same ephemeral port to connections towards different servers (a web socket to
Redis may share its port with another process's backend), and only backends seen both before
and after reading /proc, since a port closed in between may be reused at once.

A pod is a process session (`ManagedProcess` starts each in its own), so the api's uvicorn
workers count towards the api pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

from acoustid_stack.config import Settings, load_settings
from acoustid_stack.db import migrate
from acoustid_stack.fingerprint import encode_fingerprint
from acoustid_stack.local.process import ManagedProcess, free_port
from acoustid_stack.local.servers import http_ok
from acoustid_stack.sizing import PROCESS_CONNECTIONS, ComponentName, pod_connections
from api_support import ACOUSTID_STACK, Catalog, Keys, api_environ, index_server, random_hashes

pytestmark = [pytest.mark.integration, pytest.mark.slow]

API_WORKERS = 2
CONCURRENCY = 64
ROUNDS = 4  # requests of each kind per concurrent client
TRACKS = 16
SAMPLE_EVERY = 0.05
DATABASES = ("app", "fingerprint", "ingest")


@dataclass
class Peaks:
    """The most connections seen at once, per process and per pod (component)."""

    process: dict[tuple[ComponentName, int], int] = field(default_factory=dict)
    pod: dict[ComponentName, int] = field(default_factory=dict)
    samples: int = 0

    def add(self, held: Counter[tuple[ComponentName, int]]) -> None:
        self.samples += 1
        pods: Counter[ComponentName] = Counter()
        for (component, pid), count in held.items():
            self.process[(component, pid)] = max(self.process.get((component, pid), 0), count)
            pods[component] += count
        for component, count in pods.items():
            self.pod[component] = max(self.pod.get(component, 0), count)


def sessions() -> dict[int, int]:
    """{pid: session id} of every process on this machine."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # after the parenthesised command: state, ppid, pgrp, session, …
            found[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[3])
    return found


def socket_ports(pids: set[int], server_port: int) -> dict[int, int]:
    """{local TCP port: pid} of the sockets these processes hold to `server_port`."""
    inodes: dict[str, int] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes[target[len("socket:[") : -1]] = pid
    ports = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            columns = line.split()
            remote_port = int(columns[2].rsplit(":", 1)[1], 16)
            if columns[9] in inodes and remote_port == server_port:
                ports[int(columns[1].rsplit(":", 1)[1], 16)] = inodes[columns[9]]
    return ports


class Sampler(threading.Thread):
    """Counts, every SAMPLE_EVERY seconds, the backends of our databases per process."""

    def __init__(self, conninfo: str, prefix: str, pods: dict[int, ComponentName]) -> None:
        super().__init__(daemon=True)
        self.conninfo = conninfo
        self.prefix = prefix
        self.pods = pods  # session id (the pid we started) -> component
        self.peaks = Peaks()
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                while not self.halt.is_set():
                    self.peaks.add(self.sample(conn))
                    self.halt.wait(SAMPLE_EVERY)
        except BaseException as exc:  # reported by the test, not lost in a thread
            self.error = exc

    def sample(
        self, conn: psycopg.Connection[tuple[int, int]]
    ) -> Counter[tuple[ComponentName, int]]:
        ours = {pid: session for pid, session in sessions().items() if session in self.pods}
        before = self.backends(conn)
        owners = socket_ports(set(ours), int(conn.info.port))
        held: Counter[tuple[ComponentName, int]] = Counter()
        for _, port in before & self.backends(conn):
            if (pid := owners.get(port)) is not None:
                held[(self.pods[ours[pid]], pid)] += 1
        return held

    def backends(self, conn: psycopg.Connection[tuple[int, int]]) -> set[tuple[int, int]]:
        """(backend pid, client port) of every connection to our databases but this one."""
        rows = conn.execute(
            "SELECT pid, client_port FROM pg_stat_activity "
            "WHERE datname LIKE %s AND client_port IS NOT NULL AND pid <> pg_backend_pid()",
            (f"{self.prefix}%",),
        ).fetchall()
        return set(rows)


@dataclass(frozen=True)
class Stack:
    api_url: str
    web_url: str
    settings: Settings
    prefix: str
    pods: dict[int, ComponentName]
    keys: Keys
    tracks: list[str]


@pytest.fixture(scope="module")
def stack(
    test_environ: dict[str, str], test_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """index, api (2 workers), worker, cron and web on databases and a stream of their own."""
    work = tmp_path_factory.mktemp("budget")
    prefix = f"{test_prefix}_budget"
    with index_server(work / "index") as index_url:
        environ = {
            **api_environ(test_environ, index_url, work / "shutdown"),
            "ACOUSTID_NATS_STREAM": test_environ["ACOUSTID_NATS_STREAM"] + "_BUDGET",
            "ACOUSTID_NATS_SUBJECT_PREFIX": test_environ["ACOUSTID_NATS_SUBJECT_PREFIX"]
            + "_budget",
            "ACOUSTID_WEB_PORT": str(free_port()),
            **{f"ACOUSTID_DATABASE_{db.upper()}_NAME": f"{prefix}_{db}" for db in DATABASES},
        }
        settings = load_settings(path=None, environ=environ)
        for _ in migrate.upgrade(settings.database):
            pass
        catalog = Catalog(settings, index_url)
        tracks = []
        for seed in range(TRACKS):
            hashes = random_hashes(1000 + seed)
            catalog.add(hashes, 300)
            tracks.append(encode_fingerprint(hashes))
        api_port = free_port()
        api_url = f"http://127.0.0.1:{api_port}"
        web_url = f"http://127.0.0.1:{environ['ACOUSTID_WEB_PORT']}"
        env = {**os.environ, **environ}

        def run(name: ComponentName, *args: str, health: str | None = None) -> ManagedProcess:
            return ManagedProcess(
                name=name,
                argv=[*ACOUSTID_STACK, "run", name, *args],
                log_path=work / f"{name}.log",
                ready=(lambda: http_ok(health)) if health else (lambda: True),
                env=env,
            )

        processes: dict[ComponentName, ManagedProcess] = {
            "api": run(
                "api",
                *("--port", str(api_port), "--workers", str(API_WORKERS)),
                health=f"{api_url}/_health_docker",
            ),
            "worker": run("worker"),
            "cron": run("cron", "--retry-interval", "0.5"),
            "web": run("web", health=f"{web_url}/_health"),
        }
        try:
            for process in processes.values():
                process.start()
            for process in processes.values():
                process.wait_ready(timeout=60)
            # each runs in a session of its own, whose id is the pid we started
            pods = {int(process.pid or 0): name for name, process in processes.items()}
            yield Stack(api_url, web_url, settings, prefix, pods, Keys(settings), tracks)
        finally:
            for process in processes.values():
                process.stop()


async def drive(stack: Stack) -> list[httpx.Response]:
    """The api's health checks one at a time, as probes send them; then 64 clients looking up
    and 64 submitting, ROUNDS requests each, all at once, and a few on the web's status page.

    The checks come first because a machine this busy may take longer than their 2 s limit
    to answer one; their connections stay pooled, so the peak counts them all the same.
    """
    # a connection per request: on a loaded machine a kept-alive one can reach its idle
    # timeout (uvicorn closes it) just as the next request goes out on it
    limits = httpx.Limits(max_connections=4 * CONCURRENCY, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def lookups(n: int) -> list[httpx.Response]:
            return [
                await client.post(
                    f"{stack.api_url}/v2/lookup",
                    data={
                        "client": stack.keys.client_key,
                        "duration": "300",
                        "fingerprint": stack.tracks[(n + i) % len(stack.tracks)],
                        "meta": "recordings releasegroups",
                    },
                )
                for i in range(ROUNDS)
            ]

        async def submissions(n: int) -> list[httpx.Response]:
            return [
                await client.post(
                    f"{stack.api_url}/v2/submit",
                    data={
                        "client": stack.keys.client_key,
                        "user": stack.keys.user_key,
                        "duration": "200",
                        "fingerprint": encode_fingerprint(random_hashes(n * ROUNDS + i)),
                        # upstream drops a submission that links nothing
                        "mbid": str(uuid.uuid4()),
                    },
                )
                for i in range(ROUNDS)
            ]

        async def pages(n: int) -> list[httpx.Response]:
            return [await client.get(f"{stack.web_url}/") for _ in range(ROUNDS)]

        probes = [
            await client.get(f"{stack.api_url}{path}")
            for path in ("/_health", "/_health_ro")
            for _ in range(ROUNDS)
        ]
        batches = await asyncio.gather(
            *(lookups(n) for n in range(CONCURRENCY)),
            *(submissions(n) for n in range(CONCURRENCY)),
            *(pages(n) for n in range(CONCURRENCY // 8)),
        )
    return probes + [response for batch in batches for response in batch]


def handled_submissions(settings: Settings) -> int:
    with psycopg.connect(settings.database.ingest.conninfo()) as conn:
        row = conn.execute("SELECT count(*) FROM submission WHERE handled").fetchone()
    assert row is not None
    return int(row[0])


def test_no_process_or_pod_exceeds_its_connection_budget_under_load(stack: Stack) -> None:
    sampler = Sampler(stack.settings.database.app.conninfo("postgres"), stack.prefix, stack.pods)
    sampler.start()
    try:
        responses = asyncio.run(drive(stack))
        failed = [(r.url.path, r.status_code, r.text[:200]) for r in responses if r.is_error]
        assert failed == []
        assert all(r.json()["status"] == "ok" for r in responses if r.url.path.startswith("/v2/"))
        submitted = [r for r in responses if r.url.path == "/v2/submit"]
        assert all(len(r.json()["submissions"]) == 1 for r in submitted)
        deadline = time.monotonic() + 120
        while handled_submissions(stack.settings) < CONCURRENCY * ROUNDS:
            assert time.monotonic() < deadline, "the worker did not import every submission"
            time.sleep(0.2)
    finally:
        sampler.halt.set()
        sampler.join()
    assert sampler.error is None, sampler.error

    peaks = sampler.peaks
    assert peaks.samples > 10
    over = {
        (component, pid): (count, PROCESS_CONNECTIONS[component].total)
        for (component, pid), count in peaks.process.items()
        if count > PROCESS_CONNECTIONS[component].total
    }
    assert over == {}, f"processes over their budget (held, budget): {over}"
    pod_budget = {
        "api": pod_connections("api", processes=API_WORKERS),
        "worker": pod_connections("worker"),
        "cron": pod_connections("cron"),
        "web": pod_connections("web"),
    }
    assert all(peaks.pod[name] <= budget for name, budget in pod_budget.items()), (
        peaks.pod,
        pod_budget,
    )
    # every process was seen at work, and the api's pools were under pressure
    assert set(peaks.pod) == set(pod_budget)
    api_processes = [count for (name, _), count in peaks.process.items() if name == "api"]
    assert len(api_processes) == API_WORKERS
    assert max(api_processes) > PROCESS_CONNECTIONS["api"].reader
