"""Imports per second and CPU per import through `acoustid-stack run worker` (issue 5).

Setup, on this machine's PostgreSQL and NATS (the Services harness) in throwaway databases
and streams, and a private `acoustid-stack run index` server:
- a catalog of N stored fingerprints (`api_bench.load_catalog`: binary COPY into the
  fingerprint database, terms into the index), so searches, candidate loading and scoring
  work against a realistic index. By default (`--corpus realistic`) catalog and new audio
  come from the realistic corpus (`bench/corpus.py`, shaped like measured `fpcalc` output);
  `--corpus uniform` uses uniformly random hashes, which flatter every figure: run it only
  as a second column;
- per run, M new submissions in the ingest database, each with an MBID and a title (user
  meta); a share of them are noisy copies of catalog songs (they reuse the stored
  fingerprint), the rest new audio (new fingerprint and track).

Each run starts its worker processes on its own stream, publishes the ids and stops the
clock when every submission is handled. Figures per run: imports/s, and CPU seconds per
import of the worker processes, of the PostgreSQL backends serving the bench databases and
of the index server, read from /proc — on a machine shared with other work CPU per import
predicts throughput better than the wall clock. NATS is shared with other work here and
is left out. The baseline, in the same run on the same databases, is one process with
`--batch 16` (what the api bench used to run); the others use the worker's default batch.

    python bench/worker_bench.py                      # 100,000 realistic catalog fingerprints
    python bench/worker_bench.py --corpus uniform     # the same with uniformly random hashes
    python bench/worker_bench.py --fingerprints 20000 --submissions 3000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from rich.progress import Progress
from sqlalchemy import func, select

from acoustid_stack.config import Settings, load_settings
from acoustid_stack.db.migrate import upgrade
from acoustid_stack.db.schema import app as app_db
from acoustid_stack.db.schema import ingest as ingest_db
from acoustid_stack.local.process import ManagedProcess, free_port
from acoustid_stack.local.servers import index_process, running
from acoustid_stack.local.services import Services
from acoustid_stack.submissions.connection import Reconnect, connect_nats
from acoustid_stack.submissions.databases import Databases, open_databases
from acoustid_stack.submissions.store import NewSubmission, insert_submissions
from acoustid_stack.submissions.stream import ensure_stream, publish_submissions
from acoustid_stack.worker.consumer import DEFAULT_BATCH
from api_bench import (
    CORPORA,
    INDEX_NAME,
    SUBMISSION_SEEDS,
    Catalog,
    Fingerprints,
    cpu_seconds,
    load_catalog,
    make_queries,
)

CLI = [sys.executable, "-c", "from acoustid_stack.cli import main; main()"]
DEADLINE = 900.0
BASELINE_BATCH = 16
COMPONENTS = ("worker", "postgresql", "index")
TARGET = 1500  # imports/s, issue 18


@dataclass(frozen=True)
class Run:
    name: str
    processes: int
    batch: int
    submissions: int


@dataclass(frozen=True)
class Figure:
    run: Run
    seconds: float
    cpu: dict[str, float]  # component -> CPU seconds during the run

    @property
    def rate(self) -> float:
        return self.run.submissions / self.seconds

    def cpu_ms(self, component: str) -> float:
        return 1000 * self.cpu[component] / self.run.submissions

    @property
    def total_cpu_ms(self) -> float:
        return sum(self.cpu_ms(component) for component in COMPONENTS)


@dataclass(frozen=True)
class Workload:
    catalog: Catalog
    account_id: int
    application_id: int
    reuse_share: float
    seed: int
    source: Fingerprints


def base_environ(services: Services, prefix: str) -> dict[str, str]:
    pg, nats = services.postgres(), services.nats()
    environ = {
        "ACOUSTID_DATABASE_HOST": pg.host,
        "ACOUSTID_DATABASE_PORT": str(pg.port),
        "ACOUSTID_DATABASE_USER": pg.user,
        "ACOUSTID_NATS_SERVERS": nats.url,
        "ACOUSTID_INDEX_NAME": INDEX_NAME,
    }
    if pg.password:
        environ["ACOUSTID_DATABASE_PASSWORD"] = pg.password
    for name in ("app", "fingerprint", "ingest"):
        environ[f"ACOUSTID_DATABASE_{name.upper()}_NAME"] = f"{prefix}_{name}"
    return environ


def child_environ(environ: dict[str, str]) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("ACOUSTID_")}
    return {**inherited, **environ}


@contextlib.contextmanager
def index_server(environ: dict[str, str], work: Path) -> Iterator[tuple[str, int]]:
    """A private index server: (URL, pid)."""
    made = index_process(
        work / "index", free_port(), log_path=work / "index.log", env=child_environ(environ)
    )
    with running(made) as url:
        yield url, made[0].pid or 0


async def client_ids(databases: Databases) -> tuple[int, int]:
    async with databases.app.begin() as conn:
        account_id = await conn.scalar(
            app_db.account.insert()
            .values(name="worker bench", apikey=secrets.token_hex(10))
            .returning(app_db.account.c.id)
        )
        application_id = await conn.scalar(
            app_db.application.insert()
            .values(name="bench", version="1", apikey=secrets.token_hex(10), account_id=account_id)
            .returning(app_db.application.c.id)
        )
    return int(account_id), int(application_id)


async def insert(databases: Databases, count: int, workload: Workload, seed: int) -> list[int]:
    """`count` submissions: noisy copies of catalog songs (`reuse_share`), else new audio."""
    catalog, source = workload.catalog, workload.source
    known = make_queries(catalog, count, seed, source) if catalog.hashes else []
    new, new_lengths = source.make(count, SUBMISSION_SEEDS + seed)
    rng = np.random.default_rng(seed)
    submitted: list[int] = []
    for start in range(0, count, 1000):
        items = []
        for n in range(start, min(start + 1000, count)):
            if known and rng.random() < workload.reuse_share and known[n].expected:
                hashes, length = known[n].hashes, known[n].length
            else:
                hashes, length = new[n], int(new_lengths[n])
            items.append(
                NewSubmission(
                    account_id=workload.account_id,
                    application_id=workload.application_id,
                    fingerprint=hashes.tolist(),
                    length=length,
                    bitrate=192,
                    format="MP3",
                    mbid=uuid.uuid4(),
                    meta={"track": f"Bench song {seed}-{n}"},
                )
            )
        async with databases.ingest.begin() as conn:
            submitted += await insert_submissions(conn, items)
    return submitted


async def handled(databases: Databases, ids: Sequence[int]) -> int:
    s = ingest_db.submission
    async with databases.ingest.connect() as conn:
        count = await conn.scalar(
            select(func.count()).where(s.c.id.between(min(ids), max(ids)), s.c.handled.is_(True))
        )
    return int(count or 0)


async def consuming(worker: ManagedProcess) -> None:
    """Wait until the worker process has bound its consumer."""
    deadline = time.monotonic() + 60
    while "worker consuming" not in worker.log_path.read_text(errors="replace"):
        if not worker.running() or time.monotonic() > deadline:
            raise SystemExit(f"{worker.name} did not start:\n{worker.log_tail()}")
        await asyncio.sleep(0.1)


def backend_cpu(conninfo: str, prefix: str) -> dict[int, float]:
    """CPU seconds of every PostgreSQL backend connected to the bench databases, by pid."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname LIKE %s", (f"{prefix}%",)
        ).fetchall()
    return {pid: cpu_seconds(pid) for (pid,) in rows}


@dataclass(frozen=True)
class Bench:
    environ: dict[str, str]
    work: Path
    conninfo: str
    prefix: str
    index_pid: int
    workload: Workload


async def measure(run: Run, seed: int, bench: Bench, progress: Progress) -> Figure:
    """Seconds and CPU from publishing `run.submissions` new submissions (drawn with `seed`)
    until all are handled."""
    suffix = secrets.token_hex(3)
    environ = {
        **bench.environ,
        "ACOUSTID_NATS_STREAM": f"WORKER_BENCH_{suffix.upper()}",
        "ACOUSTID_NATS_SUBJECT_PREFIX": f"worker_bench_{suffix}",
    }
    settings = load_settings(path=None, environ=environ)
    databases = open_databases(settings.database, pool_size=2)
    nc = await connect_nats(settings.nats, reconnect=Reconnect.FAIL_FAST)
    js = nc.jetstream()
    workers: list[ManagedProcess] = []
    try:
        await ensure_stream(js, settings.nats)
        ids = await insert(databases, run.submissions, bench.workload, seed)
        for number in range(run.processes):
            worker = ManagedProcess(
                name=f"worker-{number}",
                argv=[*CLI, "run", "worker", "--ack-wait", "60", "--batch", str(run.batch)],
                log_path=bench.work / f"{suffix}-{number}.log",
                ready=lambda: True,
                env=child_environ(environ),
            )
            workers.append(worker)
            worker.start()
        for worker in workers:
            await consuming(worker)
        task = progress.add_task(run.name, total=len(ids))
        pids = [worker.pid or 0 for worker in workers]
        before = {
            "worker": sum(cpu_seconds(pid) for pid in pids),
            "index": cpu_seconds(bench.index_pid),
        }
        backends = backend_cpu(bench.conninfo, bench.prefix)
        started = time.monotonic()
        await publish_submissions(js, settings.nats, ids)
        while (done := await handled(databases, ids)) < len(ids):
            progress.update(task, completed=done)
            if time.monotonic() - started > DEADLINE:
                raise SystemExit(f"{run.name}: {done}/{len(ids)} handled after {DEADLINE:.0f} s")
            await asyncio.sleep(0.05)
        seconds = time.monotonic() - started
        cpu = {
            "worker": sum(cpu_seconds(pid) for pid in pids) - before["worker"],
            "index": cpu_seconds(bench.index_pid) - before["index"],
            "postgresql": sum(
                used - backends.get(pid, 0.0)
                for pid, used in backend_cpu(bench.conninfo, bench.prefix).items()
            ),
        }
        progress.update(task, completed=len(ids))
        for worker in workers:
            errors = worker.log_path.read_text(errors="replace").count("[ERROR]")
            if errors:
                print(f"{run.name}: {worker.name} logged {errors} errors ({worker.log_path})")
        return Figure(run, seconds, cpu)
    finally:
        for worker in workers:
            worker.stop()
        with contextlib.suppress(Exception):
            await js.delete_stream(settings.nats.stream)
        await nc.close()
        await databases.dispose()


def drop_databases(services: Services, prefix: str) -> None:
    with psycopg.connect(services.postgres().conninfo(), autocommit=True) as conn:
        for name in ("app", "fingerprint", "ingest"):
            conn.execute(f'DROP DATABASE IF EXISTS "{prefix}_{name}" WITH (FORCE)')


async def open_workload(
    settings: Settings, catalog: Catalog, args: argparse.Namespace, source: Fingerprints
) -> Workload:
    databases = open_databases(settings.database, pool_size=1)
    try:
        account_id, application_id = await client_ids(databases)
    finally:
        await databases.dispose()
    return Workload(catalog, account_id, application_id, args.reuse_share, args.seed, source)


def bench(runs: Sequence[Run], args: argparse.Namespace) -> tuple[list[Figure], float]:
    """The figures of `runs`, and the seconds the catalog took to load."""
    prefix = f"acoustid_bench_{secrets.token_hex(3)}"
    source = Fingerprints(args.corpus)
    with tempfile.TemporaryDirectory(prefix="worker-bench-") as tmp, Services() as services:
        work = Path(tmp)
        environ = base_environ(services, prefix)
        settings = load_settings(path=None, environ=environ)
        try:
            list(upgrade(settings.database))
            with index_server(environ, work) as (url, index_pid), Progress() as progress:
                environ["ACOUSTID_INDEX_SHARDS"] = url
                started = time.monotonic()
                catalog = (
                    load_catalog(settings, url, args.fingerprints, args.seed, source)
                    if args.fingerprints
                    else Catalog([], np.zeros(0, dtype=np.int64), [])
                )
                load_seconds = time.monotonic() - started
                workload = asyncio.run(open_workload(settings, catalog, args, source))
                state = Bench(
                    environ, work, services.postgres().conninfo(), prefix, index_pid, workload
                )
                figures = [
                    asyncio.run(measure(run, args.seed + position, state, progress))
                    for position, run in enumerate(runs, start=1)
                ]
                return figures, load_seconds
        finally:
            drop_databases(services, prefix)


def report(figures: Sequence[Figure], args: argparse.Namespace, load_seconds: float) -> None:
    base = figures[0]
    print(
        f"\ncatalog: {args.fingerprints} {args.corpus} fingerprints (--corpus; loaded in "
        f"{load_seconds:.0f} s); submissions: {args.reuse_share:.0%} noisy copies of catalog "
        f"songs, the rest new; load average at the end "
        + ", ".join(f"{value:.1f}" for value in os.getloadavg())
    )
    print(f"baseline: {base.run.name}; ratios against it in brackets\n")
    header = f"{'run':28s} {'imports':>7s} {'s':>6s} {'imports/s':>16s}"
    header += "".join(f" {name + ' ms':>17s}" for name in (*COMPONENTS, "total CPU"))
    print(header)
    for figure in figures:
        cells = [(figure.cpu_ms(name), base.cpu_ms(name)) for name in COMPONENTS]
        cells.append((figure.total_cpu_ms, base.total_cpu_ms))
        line = f"{figure.run.name:28s} {figure.run.submissions:7d} {figure.seconds:6.1f}"
        line += f" {figure.rate:7.0f} ({figure.rate / base.rate:5.2f}x)"
        line += "".join(f" {ours:8.3f} ({ours / theirs:5.2f}x)" for ours, theirs in cells)
        print(line)
    best = max(figures, key=lambda figure: figure.rate)
    cores = os.cpu_count() or 1
    print(
        f"\nCPU per import is worker + PostgreSQL backends + index; {cores} cores at "
        f"{best.total_cpu_ms:.2f} ms would carry {1000 * cores / best.total_cpu_ms:.0f}/s "
        "before NATS, PostgreSQL's WAL writer and everything else on the machine"
    )
    verdict = "met" if best.rate >= TARGET else "MISSED"
    print(f"target: >= {TARGET} imports/s -> {verdict} ({best.rate:.0f}/s, {best.run.name})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--fingerprints", type=int, default=100_000)
    parser.add_argument("--submissions", type=int, default=6000, help="per measured run")
    parser.add_argument("--baseline-submissions", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="`run worker --batch`")
    parser.add_argument("--processes", type=int, default=2, help="worker processes, last run")
    parser.add_argument("--reuse-share", type=float, default=0.25)
    parser.add_argument(
        "--corpus",
        choices=CORPORA,
        default="realistic",
        help="realistic: bench/corpus.py; uniform: random hashes (flattering, for comparison)",
    )
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    # `timeout` and Ctrl-C alike must reach the finally blocks that stop our processes
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    runs = [
        Run(f"1 process, --batch {BASELINE_BATCH}", 1, BASELINE_BATCH, args.baseline_submissions),
        Run(f"1 process, --batch {args.batch}", 1, args.batch, args.submissions),
        Run(
            f"{args.processes} processes, --batch {args.batch}",
            args.processes,
            args.batch,
            args.submissions,
        ),
    ]
    figures, load_seconds = bench(runs, args)
    report(figures, args, load_seconds)


if __name__ == "__main__":
    main()
