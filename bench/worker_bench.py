"""Imports per second through `acoustid-stack run worker`, against one-at-a-time imports.

Workload: N synthetic distinct submissions (random 950-hash fingerprints of 120 s, each
with its own MBID, a format and a bitrate) are inserted into the ingest database; the
worker processes start on a real index server (`acoustid-stack run index`) and real
PostgreSQL and NATS; the clock starts when the ids are published and stops when every
submission is handled. The baseline, measured in the same run on the same databases, is
one worker process with `--batch 1`: one submission per transaction, one at a time.
Everything the bench creates (databases, streams, index) carries a unique prefix and is
removed at the end.

    python bench/worker_bench.py [--submissions 5000] [--baseline-submissions 500]
                                 [--batch 200]
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
from acoustid_stack.submissions.databases import Databases, open_databases
from acoustid_stack.submissions.store import NewSubmission, insert_submissions
from acoustid_stack.submissions.stream import connect_nats, ensure_stream, publish_submissions

CLI = [sys.executable, "-c", "from acoustid_stack.cli import main; main()"]
HASHES = 950  # chromaprint gives ~7.8 hashes per second: a 120 s song
DEADLINE = 600.0


@dataclass(frozen=True)
class Run:
    name: str
    processes: int
    args: tuple[str, ...]
    submissions: int


@dataclass(frozen=True)
class Figure:
    run: Run
    seconds: float

    @property
    def rate(self) -> float:
        return self.run.submissions / self.seconds


def base_environ(services: Services, prefix: str) -> dict[str, str]:
    pg, nats = services.postgres(), services.nats()
    environ = {
        "ACOUSTID_DATABASE_HOST": pg.host,
        "ACOUSTID_DATABASE_PORT": str(pg.port),
        "ACOUSTID_DATABASE_USER": pg.user,
        "ACOUSTID_NATS_SERVERS": nats.url,
        "ACOUSTID_INDEX_NAME": prefix,
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
def index_server(environ: dict[str, str], work: Path) -> Iterator[str]:
    made = index_process(
        work / "index", free_port(), log_path=work / "index.log", env=child_environ(environ)
    )
    with running(made) as url:
        yield url


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


async def insert(databases: Databases, count: int, ids: tuple[int, int]) -> list[int]:
    rng = np.random.default_rng()
    submitted: list[int] = []
    for start in range(0, count, 1000):
        items = [
            NewSubmission(
                account_id=ids[0],
                application_id=ids[1],
                fingerprint=rng.integers(-(2**31), 2**31, HASHES, dtype=np.int64).tolist(),
                length=120,
                bitrate=192,
                format="MP3",
                mbid=uuid.uuid4(),
            )
            for _ in range(min(1000, count - start))
        ]
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


async def measure(
    run: Run, environ: dict[str, str], settings: Settings, work: Path, progress: Progress
) -> Figure:
    """Seconds from publishing `run.submissions` new submissions until all are handled."""
    suffix = secrets.token_hex(3)
    environ = {
        **environ,
        "ACOUSTID_NATS_STREAM": f"WORKER_BENCH_{suffix.upper()}",
        "ACOUSTID_NATS_SUBJECT_PREFIX": f"worker_bench_{suffix}",
    }
    settings = load_settings(path=None, environ=environ)
    databases = open_databases(settings.database, pool_size=2)
    nc = await connect_nats(settings.nats)
    js = nc.jetstream()
    workers: list[ManagedProcess] = []
    try:
        await ensure_stream(js, settings.nats)
        ids = await insert(databases, run.submissions, await client_ids(databases))
        for number in range(run.processes):
            log = work / f"{suffix}-{number}.log"
            worker = ManagedProcess(
                name=f"worker-{number}",
                argv=[*CLI, "run", "worker", "--ack-wait", "60", *run.args],
                log_path=log,
                ready=lambda: True,
                env=child_environ(environ),
            )
            workers.append(worker)
            worker.start()
        for worker in workers:
            await consuming(worker)
        task = progress.add_task(run.name, total=len(ids))
        started = time.monotonic()
        await publish_submissions(js, settings.nats, ids)
        while (done := await handled(databases, ids)) < len(ids):
            progress.update(task, completed=done)
            if time.monotonic() - started > DEADLINE:
                raise SystemExit(f"{run.name}: {done}/{len(ids)} handled after {DEADLINE:.0f} s")
            await asyncio.sleep(0.05)
        seconds = time.monotonic() - started
        progress.update(task, completed=len(ids))
        for worker in workers:
            errors = worker.log_path.read_text(errors="replace").count("[ERROR]")
            if errors:
                print(f"{run.name}: {worker.name} logged {errors} errors ({worker.log_path})")
        return Figure(run, seconds)
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


async def bench(runs: Sequence[Run]) -> list[Figure]:
    prefix = f"acoustid_bench_{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory(prefix="worker-bench-") as tmp, Services() as services:
        work = Path(tmp)
        environ = base_environ(services, prefix)
        settings = load_settings(path=None, environ=environ)
        try:
            list(upgrade(settings.database))
            with index_server(environ, work) as url, Progress() as progress:
                environ["ACOUSTID_INDEX_SHARDS"] = url
                return [await measure(run, environ, settings, work, progress) for run in runs]
        finally:
            drop_databases(services, prefix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--submissions", type=int, default=5000)
    parser.add_argument("--baseline-submissions", type=int, default=500)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    # `timeout` and Ctrl-C alike must reach the finally blocks that stop our processes
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    batch = ("--batch", str(args.batch))
    runs = [
        Run("baseline: --batch 1, 1 process", 1, ("--batch", "1"), args.baseline_submissions),
        Run(f"--batch {args.batch}, 1 process", 1, batch, args.submissions),
        Run(f"--batch {args.batch}, 2 processes", 2, batch, args.submissions),
    ]
    figures = asyncio.run(bench(runs))
    base = figures[0].rate
    for figure in figures:
        print(
            f"{figure.run.name:34s} {figure.run.submissions:6d} submissions "
            f"{figure.seconds:7.2f} s  {figure.rate:8.1f} imports/s  = {figure.rate / base:5.1f}x"
        )
    best = max(figure.rate for figure in figures)
    print(f"target: >= 1000 imports/s -> {'met' if best >= 1000 else 'MISSED'} ({best:.0f}/s)")


if __name__ == "__main__":
    main()
