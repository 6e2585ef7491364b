"""Benchmark of `/v2/lookup` and of imports, against single-process baselines (issue 5).

Setup, all on this machine's PostgreSQL, Redis and NATS (the Services harness), in
throwaway databases, keys and a stream that are removed at the end:
- N fingerprints written straight into the fingerprint database with binary COPY, each with
  its own track, MBID and user meta, and their query terms bulk-inserted into a real
  `acoustid-stack run index`. By default (`--corpus realistic`) they come from the realistic
  corpus (`bench/corpus.py`: hashes shaped like measured `fpcalc` output, popular terms
  with long posting lists); `--corpus uniform` draws 30–240 s of uniformly random hashes
  (~8 per second), which flatters every figure: run it only as a second column.
- `acoustid-stack run api` with the production worker count (`server_processes` of the
  sizing profile), rate limits raised out of the way (their Redis calls still run).

Figures:
- lookups: noisy copies of stored fingerprints (and 1 in 10 unknown ones) POSTed as
  pyacoustid does (gzip form, `meta=recordings releasegroups compress`), at 1 and 16
  concurrent clients: lookups/s, p50, p99, and how many found their own track first.
  Closed-loop clients wait for each answer, so at 16 clients the mean latency is 16 / rate
  (Little's law): "p99 < 20 ms at 300/s" is measured with 16 clients PACED to 300 lookups/s
  in all (open loop), each latency counted from when its request was due.
  Baseline: `Matcher.find` called in this process, sequentially, on the same queries.
- imports: M new submissions sent through `/v2/submit`, then `acoustid-stack run worker`
  processes started on the backlog: imports/s until none is pending. Baseline:
  `SubmissionImporter.import_submission` called in this process, one after another.

    python bench/api_bench.py                        # 100,000 realistic fingerprints
    python bench/api_bench.py --corpus uniform       # the same with uniformly random hashes
    python bench/api_bench.py --also-from /tmp/old   # api CPU per lookup vs an older tree
    python bench/api_bench.py --fingerprints 20000 --lookups 1000 --imports 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import http.client
import json
import os
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import msgpack
import numpy as np
import psycopg
import redis

from acoustid_stack.api.auth import new_api_key
from acoustid_stack.config import Settings, load_settings
from acoustid_stack.db import migrate
from acoustid_stack.db.reader import Reader
from acoustid_stack.fingerprint import encode_fingerprint, extract_query
from acoustid_stack.index.client import ShardedIndexClient
from acoustid_stack.local.process import ManagedProcess, free_port
from acoustid_stack.local.services import Services
from acoustid_stack.matching import DatabaseCandidates, Matcher
from acoustid_stack.sizing import load_sizing
from acoustid_stack.submissions.databases import open_databases
from acoustid_stack.submissions.store import NewSubmission, insert_submissions
from acoustid_stack.worker.consumer import DEFAULT_BATCH
from acoustid_stack.worker.importer import SubmissionImporter
from corpus import Corpus

CLI = [sys.executable, "-m", "acoustid_stack"]
INDEX_NAME = "fingerprints"
HASHES_PER_SECOND = 8
LENGTHS = (30, 240)
META = "recordings releasegroups compress"
MIN_SCORE = 0.4
SUBMIT_BATCH = 50


@dataclass
class Catalog:
    """What was written: per fingerprint (id = row + 1) its hashes, length and track gid."""

    hashes: list[np.ndarray]
    lengths: np.ndarray
    gids: list[uuid.UUID]


# ---- data ---------------------------------------------------------------------------------


CORPORA = ("realistic", "uniform")
# seeds of the catalog are seed * CATALOG_STRIDE + first row; these keep the others apart
CATALOG_STRIDE = 1_000_003
UNKNOWN_SEEDS = 1 << 40
SUBMISSION_SEEDS = 1 << 41


class Fingerprints:
    """Where the benches' fingerprints come from: `realistic` (bench/corpus.py, shaped like
    measured `fpcalc` output) or `uniform` (random hashes, which flatter every figure)."""

    def __init__(self, kind: str) -> None:
        if kind not in CORPORA:
            raise SystemExit(f"error: unknown corpus {kind!r}; known: {', '.join(CORPORA)}")
        self.kind = kind
        self.corpus = Corpus.load_or_build() if kind == "realistic" else None

    def make(self, count: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
        """`count` fingerprints (int32 hashes, as stored) and their lengths in seconds."""
        if self.corpus is None:
            rng = np.random.default_rng(seed)
            lengths = rng.integers(LENGTHS[0], LENGTHS[1] + 1, count)
            sizes = lengths * HASHES_PER_SECOND
            flat = rng.integers(-(2**31), 2**31, int(sizes.sum()), dtype=np.int64)
            return np.split(flat.astype(np.int32), np.cumsum(sizes)[:-1]), lengths
        hashes = [values.view(np.int32) for values in self.corpus.fingerprints(count, seed)]
        sizes = np.array([values.size for values in hashes])
        return hashes, np.maximum(1, np.rint(sizes / HASHES_PER_SECOND)).astype(np.int64)


def binary_copy(rows: Iterator[bytes]) -> Iterator[bytes]:
    """PostgreSQL's binary COPY stream around already encoded rows."""
    yield b"PGCOPY\n\xff\r\n\0" + struct.pack("!ii", 0, 0)
    yield from rows
    yield struct.pack("!h", -1)


def fingerprint_rows(first_id: int, hashes: list[np.ndarray], lengths: Any) -> Iterator[bytes]:
    """Rows of (id, fingerprint int4[], length int2, track_id int4); track id = fingerprint id."""
    for offset, (values, length) in enumerate(zip(hashes, lengths, strict=True)):
        row_id = first_id + offset
        elements = np.empty((len(values), 2), dtype=">i4")
        elements[:, 0] = 4
        elements[:, 1] = values
        array = struct.pack("!iiiii", 1, 0, 23, len(values), 1) + elements.tobytes()
        yield (
            struct.pack("!hii", 4, 4, row_id)
            + struct.pack("!i", len(array))
            + array
            + struct.pack("!ihii", 2, int(length), 4, row_id)
        )


def index_terms(index: httpx.Client, ids: range, hashes: list[np.ndarray]) -> None:
    changes = [
        {"i": {"i": row_id, "h": extract_query(values).view(np.uint32).tolist()}}
        for row_id, values in zip(ids, hashes, strict=True)
    ]
    for part in range(0, len(changes), 1000):
        reply = index.post(
            f"/{INDEX_NAME}/_update",
            content=msgpack.packb({"c": changes[part : part + 1000]}),
            headers={"Content-Type": "application/vnd.msgpack"},
        )
        reply.raise_for_status()


def load_catalog(
    settings: Settings, index_url: str | None, count: int, seed: int, source: Fingerprints
) -> Catalog:
    """`count` fingerprints into the database and, unless `index_url` is None, the index."""
    rng = np.random.default_rng(seed)
    catalog = Catalog([], np.zeros(0, dtype=np.int64), [])
    lengths: list[Any] = []
    index = httpx.Client(base_url=index_url or "", timeout=600)
    chunk = 5000
    started = time.perf_counter()
    with psycopg.connect(settings.database.fingerprint.conninfo(), autocommit=True) as conn:
        for first in range(0, count, chunk):
            size = min(chunk, count - first)
            hashes, chunk_lengths = source.make(size, seed * CATALOG_STRIDE + first)
            gids = [uuid.UUID(bytes=rng.bytes(16), version=4) for _ in range(size)]
            ids = range(first + 1, first + size + 1)
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy("COPY track (id, gid) FROM STDIN") as copy:
                    for row_id, gid in zip(ids, gids, strict=True):
                        copy.write_row((row_id, gid))
                columns = "fingerprint (id, fingerprint, length, track_id)"
                with cur.copy(f"COPY {columns} FROM STDIN (FORMAT BINARY)") as copy:
                    for block in binary_copy(fingerprint_rows(first + 1, hashes, chunk_lengths)):
                        copy.write(block)
                with cur.copy("COPY track_mbid (track_id, mbid, submission_count) FROM STDIN") as c:
                    for row_id in ids:
                        c.write_row((row_id, uuid.UUID(bytes=rng.bytes(16), version=4), 3))
                with cur.copy("COPY meta (id, track, artist, album) FROM STDIN") as copy:
                    for row_id in ids:
                        copy.write_row(
                            (
                                row_id,
                                f"Song {row_id}",
                                f"Artist {row_id % 997}",
                                f"Album {row_id // 12}",
                            )
                        )
                with cur.copy("COPY track_meta (track_id, meta_id) FROM STDIN") as copy:
                    for row_id in ids:
                        copy.write_row((row_id, row_id))
            if index_url:
                index_terms(index, ids, hashes)
            catalog.hashes.extend(hashes)
            catalog.gids.extend(gids)
            lengths.append(chunk_lengths)
            done = first + size
            rate = done / (time.perf_counter() - started)
            print(f"  loaded {done} fingerprints ({rate:.0f}/s)", flush=True)
        for table in ("track", "fingerprint", "track_mbid", "meta", "track_meta"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
            conn.execute(f"ANALYZE {table}")
    index.close()
    catalog.lengths = np.concatenate(lengths)
    return catalog


@dataclass(frozen=True)
class Query:
    hashes: np.ndarray
    length: int
    expected: int | None  # the track (id = fingerprint id) it should find first; None: unknown
    expected_gid: str | None


def make_queries(catalog: Catalog, count: int, seed: int, source: Fingerprints) -> list[Query]:
    """Noisy copies (one flipped bit in 10 % of the hashes) and, 1 in 10, unknown audio."""
    rng = np.random.default_rng(seed + 1)
    unknown, unknown_lengths = source.make(count // 10 + 1, UNKNOWN_SEEDS + seed)
    queries = []
    for position in range(count):
        if position % 10 == 9:
            n = position // 10
            queries.append(Query(unknown[n], int(unknown_lengths[n]), None, None))
            continue
        target = int(rng.integers(len(catalog.hashes)))
        hashes = catalog.hashes[target].copy()
        noisy = rng.random(len(hashes)) < 0.1
        bits = rng.integers(0, 32, int(noisy.sum())).astype(np.uint32)
        hashes[noisy] = (hashes[noisy].view(np.uint32) ^ (np.uint32(1) << bits)).view(np.int32)
        queries.append(
            Query(hashes, int(catalog.lengths[target]), target + 1, str(catalog.gids[target]))
        )
    return queries


# ---- processes ----------------------------------------------------------------------------


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def process(
    name: str, argv: list[str], work: Path, environ: dict[str, str], ready_url: str | None
) -> Iterator[ManagedProcess]:
    managed = ManagedProcess(
        name=name,
        argv=[*CLI, *argv],
        log_path=work / f"{name}.log",
        ready=(lambda: _ready(ready_url)) if ready_url else (lambda: True),
        env={**os.environ, **environ},
    )
    managed.start()
    try:
        managed.wait_ready(timeout=120)
        yield managed
    finally:
        managed.stop(timeout=60)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and all its descendants, from /proc: on a
    machine shared with other work, CPU per lookup is steadier than wall-clock figures."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
    return total


@contextlib.contextmanager
def sampled(pid: int, output: Path | None) -> Iterator[None]:
    """py-spy samples of `pid` and its children (folded stacks, `-f raw`) into `output` while
    the block runs; nothing without `output`."""
    if output is None:
        yield
        return
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("error: --py-spy needs py-spy on PATH (pip install py-spy)")
    argv = [spy, "record", "-p", str(pid), "--subprocesses", "-f", "raw", "-o", str(output)]
    recorder = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)  # attached before the measured requests start
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=60)


# ---- lookups ------------------------------------------------------------------------------


def lookup_body(client_key: str, query: Query) -> bytes:
    form = {
        "client": client_key,
        "format": "json",
        "meta": META,
        "duration": str(query.length),
        "fingerprint": encode_fingerprint(query.hashes),
    }
    return gzip.compress(urlencode(form).encode())


@dataclass
class Run:
    rate: float
    latencies: list[float]
    found_first: int
    expected: int
    cpu_ms: float = 0.0  # CPU of the api processes per lookup


def run_lookups(
    port: int,
    bodies: list[bytes],
    queries: list[Query],
    clients: int,
    rate: float | None = None,
) -> Run:
    """`clients` connections sending `bodies`. Without `rate` each sends its next request as
    soon as the previous answer came (closed loop: the figure is the throughput). With `rate`
    the requests are paced to that many per second in all (open loop) and each latency counts
    from the moment its request was due, so a stalled server is not excused by sending less."""
    latencies: list[float] = []
    found = [0]
    lock = threading.Lock()
    errors: list[str] = []
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Encoding": "gzip",
        "User-Agent": "api-bench",
    }

    def worker(part: range) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine, hits = [], 0
        for i in part:
            started = time.perf_counter()
            if rate is not None:
                due = begin + i / rate
                time.sleep(max(0.0, due - started))
                started = due
            conn.request("POST", "/v2/lookup", body=bodies[i], headers=headers)
            response = conn.getresponse()
            data = response.read()
            mine.append(time.perf_counter() - started)
            if response.status != 200:
                errors.append(f"HTTP {response.status}: {data[:200]!r}")
                continue
            results = json.loads(data)["results"]
            expected = queries[i].expected_gid
            if expected is not None and results and results[0]["id"] == expected:
                hits += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            found[0] += hits

    parts = [range(k, len(bodies), clients) for k in range(clients)]
    threads = [threading.Thread(target=worker, args=(part,)) for part in parts]
    begin = started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{len(errors)} lookups failed, e.g. {errors[0]}")
    expected_count = sum(1 for q in queries[: len(bodies)] if q.expected is not None)
    return Run(len(bodies) / elapsed, latencies, found[0], expected_count)


async def baseline_lookups(settings: Settings, queries: list[Query]) -> Run:
    """`Matcher.find` in this process, one query after another: no HTTP, no api."""
    reader = Reader(settings.database.fingerprint_ro, max_size=2)
    index = ShardedIndexClient.from_settings(settings)
    matcher = Matcher(index=index, candidates=DatabaseCandidates(reader=reader))
    try:
        for query in queries[:50]:  # warm-up: connections, caches
            await matcher.find(query.hashes, query.length, min_score=MIN_SCORE)
        latencies, found = [], 0
        started = time.perf_counter()
        for query in queries:
            t0 = time.perf_counter()
            matches = await matcher.find(query.hashes, query.length, min_score=MIN_SCORE)
            latencies.append(time.perf_counter() - t0)
            found += bool(matches) and matches[0].track_id == query.expected
        rate = len(queries) / (time.perf_counter() - started)
    finally:
        await index.close()
        await reader.close()
    expected = sum(1 for q in queries if q.expected is not None)
    return Run(rate, latencies, found, expected)


ROUNDS = 4


def compare_cpu(
    apis: dict[str, tuple[ManagedProcess, int]], bodies: list[bytes], queries: list[Query]
) -> dict[str, float]:
    """api CPU ms per lookup at 16 clients of each api, measured in ROUNDS alternating
    rounds over the same lookups, so that the machine's load drifts over both alike."""
    used = dict.fromkeys(apis, 0.0)
    part = max(1, len(bodies) // ROUNDS)
    for round_number in range(ROUNDS):
        chunk = bodies[round_number * part : (round_number + 1) * part]
        for name, (api, port) in apis.items():
            before = cpu_seconds(api.pid or 0)
            run_lookups(port, chunk, queries, 16)
            used[name] += cpu_seconds(api.pid or 0) - before
    return {name: 1000 * seconds / (part * ROUNDS) for name, seconds in used.items()}


# ---- imports ------------------------------------------------------------------------------


async def baseline_imports(
    settings: Settings,
    account_id: int,
    application_id: int,
    seed: int,
    count: int,
    *,
    source: Fingerprints,
) -> float:
    """Import `count` submissions with one in-process importer, one after another."""
    hashes, lengths = source.make(count, SUBMISSION_SEEDS + seed)
    databases = open_databases(settings.database, pool_size=2)
    index = ShardedIndexClient.from_settings(settings)
    try:
        async with databases.ingest.begin() as conn:
            ids = await insert_submissions(
                conn,
                [
                    NewSubmission(
                        account_id=account_id,
                        application_id=application_id,
                        fingerprint=values.tolist(),
                        length=int(length),
                        mbid=uuid.uuid4(),
                        meta={"track": "Baseline"},
                    )
                    for values, length in zip(hashes, lengths, strict=True)
                ],
            )
        importer = SubmissionImporter(databases=databases, index=index)
        started = time.perf_counter()
        for submission_id in ids:
            await importer.import_submission(submission_id)
        return count / (time.perf_counter() - started)
    finally:
        await index.close()
        await databases.dispose()


def submit_through_api(
    url: str, client_key: str, user_key: str, seed: int, count: int, *, source: Fingerprints
) -> None:
    hashes, lengths = source.make(count, SUBMISSION_SEEDS + seed)
    with httpx.Client(base_url=url, timeout=120) as http:
        for first in range(0, count, SUBMIT_BATCH):
            form: dict[str, str] = {"client": client_key, "user": user_key, "format": "json"}
            for n in range(first, min(first + SUBMIT_BATCH, count)):
                form[f"fingerprint.{n}"] = encode_fingerprint(hashes[n])
                form[f"duration.{n}"] = str(int(lengths[n]))
                form[f"mbid.{n}"] = str(uuid.uuid4())
                form[f"track.{n}"] = f"Imported {n}"
            reply = http.post(
                "/v2/submit",
                content=gzip.compress(urlencode(form).encode()),
                headers={
                    "Content-Encoding": "gzip",
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
            if reply.json().get("status") != "ok":
                raise SystemExit(f"submit failed: {reply.text[:300]}")


def pending(settings: Settings) -> int:
    with psycopg.connect(settings.database.ingest.conninfo()) as conn:
        row = conn.execute("SELECT count(*) FROM pending_submission").fetchone()
    return int(row[0]) if row else 0


# ---- setup and teardown -------------------------------------------------------------------


def environ_for(services: Services, prefix: str) -> dict[str, str]:
    pg, rd, nats = services.postgres(), services.redis(), services.nats()
    environ = {
        "ACOUSTID_DATABASE_HOST": pg.host,
        "ACOUSTID_DATABASE_PORT": str(pg.port),
        "ACOUSTID_DATABASE_USER": pg.user,
        "ACOUSTID_REDIS_HOST": rd.host,
        "ACOUSTID_REDIS_PORT": str(rd.port),
        "ACOUSTID_REDIS_KEY_PREFIX": f"{prefix}:",
        "ACOUSTID_NATS_SERVERS": nats.url,
        "ACOUSTID_NATS_STREAM": f"{prefix.upper()}_SUBMISSIONS",
        "ACOUSTID_NATS_SUBJECT_PREFIX": f"{prefix}.submissions",
        # limits out of the way; the Redis calls of the check still run on every request
        "ACOUSTID_RATE_LIMIT_GLOBAL": "1000000",
        "ACOUSTID_RATE_LIMIT_IP": "1000000",
        "ACOUSTID_RATE_LIMIT_APPLICATION": "1000000",
        "ACOUSTID_INDEX_NAME": INDEX_NAME,
    }
    for name in ("app", "fingerprint", "ingest"):
        environ[f"ACOUSTID_DATABASE_{name.upper()}_NAME"] = f"{prefix}_{name}"
    if pg.password:
        environ["ACOUSTID_DATABASE_PASSWORD"] = pg.password
    if rd.password:
        environ["ACOUSTID_REDIS_PASSWORD"] = rd.password
    return environ


def clean_up(services: Services, prefix: str) -> None:
    with psycopg.connect(services.postgres().conninfo(), autocommit=True) as conn:
        for name in ("app", "fingerprint", "ingest"):
            conn.execute(f'DROP DATABASE IF EXISTS "{prefix}_{name}" WITH (FORCE)')
    client = redis.Redis.from_url(services.redis().url())
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(key)
    client.close()

    async def drop_stream() -> None:
        import nats

        nc = await nats.connect(services.nats().url)
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_stream(f"{prefix.upper()}_SUBMISSIONS")
        await nc.close()

    asyncio.run(drop_stream())


def create_keys(settings: Settings) -> tuple[str, str, int, int]:
    """(client key, user key, account id, application id) in the app database."""
    client_key, user_key = new_api_key(), new_api_key()
    with psycopg.connect(settings.database.app.conninfo(), autocommit=True) as conn:
        account = conn.execute(
            "INSERT INTO account (name, apikey) VALUES ('bench', %s) RETURNING id", (user_key,)
        ).fetchone()
        assert account is not None
        application = conn.execute(
            "INSERT INTO application (name, version, apikey, account_id) "
            "VALUES ('api bench', '1.0', %s, %s) RETURNING id",
            (client_key, account[0]),
        ).fetchone()
        assert application is not None
    return client_key, user_key, int(account[0]), int(application[0])


# ---- report -------------------------------------------------------------------------------


def ms(values: list[float], p: float) -> float:
    return float(np.percentile(np.array(values), p)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--fingerprints", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=3000, help="lookups per client count")
    parser.add_argument("--imports", type=int, default=3000, help="submissions for the workers")
    parser.add_argument("--baseline-imports", type=int, default=300)
    parser.add_argument("--api-workers", type=int, help="[default: sizing profile's api]")
    parser.add_argument("--worker-processes", type=int, default=2)
    parser.add_argument(
        "--worker-batch",
        type=int,
        default=DEFAULT_BATCH,
        help="`run worker --batch`: submissions fetched and imported together (a worker holds "
        "one connection per database whatever the batch: sizing.PROCESS_CONNECTIONS)",
    )
    parser.add_argument("--profile", default="production", help="sizing profile for api workers")
    parser.add_argument(
        "--own-services",
        action="store_true",
        help="start PostgreSQL, Redis and NATS from binaries on free ports instead of using "
        "the ones running here (a machine shared with other work)",
    )
    parser.add_argument(
        "--paced-rate",
        type=float,
        default=300.0,
        help="lookups/s offered by 16 paced clients for the latency-under-load figures",
    )
    parser.add_argument(
        "--corpus",
        choices=CORPORA,
        default="realistic",
        help="realistic: bench/corpus.py; uniform: random hashes (flattering, for comparison)",
    )
    parser.add_argument(
        "--also-from",
        type=Path,
        help="another source tree (DIR/app, e.g. `git archive REV app | tar -x -C DIR`): its "
        "api's CPU per lookup is measured against this one's, in alternating rounds",
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        help="write py-spy samples (folded stacks) of the api during the 16-client run here",
    )
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    # the profile's processes per api pod, but no more than this machine has cores
    sized = load_sizing().profile(args.profile).derived.server_processes["api"]
    api_workers = args.api_workers or min(sized, os.cpu_count() or 1)

    prefix = f"acoustid_apibench_{secrets.token_hex(3)}"
    own = {"use_running": False, "use_docker": False} if args.own_services else {}
    with tempfile.TemporaryDirectory(prefix="api-bench-") as tmp:
        work = Path(tmp)
        (work / "services").mkdir()
        with Services(work_dir=work / "services", **own) as services:
            environ = environ_for(services, prefix)
            try:
                figures = bench(args, api_workers, work, environ)
            finally:
                clean_up(services, prefix)
    report(args, api_workers, figures)


def bench(args: argparse.Namespace, api_workers: int, work: Path, environ: dict[str, str]) -> Any:
    source = Fingerprints(args.corpus)
    settings = load_settings(path=None, environ=environ)
    for _ in migrate.upgrade(settings.database):
        pass
    index_port = free_port()
    index_url = f"http://127.0.0.1:{index_port}"
    index_argv = [
        "run",
        "index",
        "--dir",
        str(work / "index"),
        "--port",
        str(index_port),
        "--create",
        INDEX_NAME,
    ]
    with process("index", index_argv, work, environ, f"{index_url}/_health"):
        environ["ACOUSTID_INDEX_SHARDS"] = index_url
        settings = load_settings(path=None, environ=environ)
        started = time.perf_counter()
        catalog = load_catalog(settings, index_url, args.fingerprints, args.seed, source)
        load_seconds = time.perf_counter() - started
        client_key, user_key, account_id, application_id = create_keys(settings)
        queries = make_queries(catalog, args.lookups, args.seed, source)
        bodies = [lookup_body(client_key, query) for query in queries]

        base_lookups = asyncio.run(baseline_lookups(settings, queries))
        print(f"baseline lookups: {base_lookups.rate:.0f}/s", flush=True)
        port = free_port()
        api_argv = ["run", "api", "--port", str(port), "--workers", str(api_workers)]
        environ["ACOUSTID_WEBSITE_SHUTDOWN_FILE"] = str(work / "api-shutdown")
        environ["ACOUSTID_WEBSITE_SHUTDOWN_DELAY"] = "0"
        api_ready = f"http://127.0.0.1:{port}/_health_docker"
        with process("api", api_argv, work, environ, api_ready) as api:
            run_lookups(port, bodies[:200], queries, 4)  # warm-up: every worker's caches
            runs = {}
            for clients in (1, 16):
                spy = args.py_spy if clients == 16 else None
                with sampled(api.pid or 0, spy):
                    cpu_before = cpu_seconds(api.pid or 0)
                    runs[clients] = run_lookups(port, bodies, queries, clients)
                    used = cpu_seconds(api.pid or 0) - cpu_before
                runs[clients].cpu_ms = 1000 * used / len(bodies)
                print(f"lookups, {clients} clients: {runs[clients].rate:.0f}/s", flush=True)
            paced = run_lookups(port, bodies, queries, 16, rate=args.paced_rate)
            print(f"lookups paced at {args.paced_rate:.0f}/s: {paced.rate:.0f}/s", flush=True)
            versus = None
            if args.also_from:
                older_env = {**environ, "PYTHONPATH": str(args.also_from / "app")}
                older_port = free_port()
                older_argv = [*api_argv[:3], str(older_port), *api_argv[4:]]
                older_ready = f"http://127.0.0.1:{older_port}/_health_docker"
                with process("api-older", older_argv, work, older_env, older_ready) as older:
                    run_lookups(older_port, bodies[:200], queries, 4)
                    versus = compare_cpu(
                        {"this": (api, port), "older": (older, older_port)}, bodies, queries
                    )

            base_imports = asyncio.run(
                baseline_imports(
                    settings,
                    account_id,
                    application_id,
                    args.seed + 7,
                    args.baseline_imports,
                    source=source,
                )
            )
            print(f"baseline imports: {base_imports:.0f}/s", flush=True)
            submit_through_api(
                f"http://127.0.0.1:{port}",
                client_key,
                user_key,
                args.seed + 8,
                args.imports,
                source=source,
            )
        backlog = pending(settings)
        with contextlib.ExitStack() as workers:
            started = time.perf_counter()
            for n in range(args.worker_processes):
                workers.enter_context(
                    process(
                        f"worker-{n}",
                        ["run", "worker", "--batch", str(args.worker_batch)],
                        work,
                        environ,
                        None,
                    )
                )
            deadline = started + 1800
            while pending(settings) and time.perf_counter() < deadline:
                time.sleep(0.2)
            import_seconds = time.perf_counter() - started
            left = pending(settings)
    return {
        "versus": versus,
        "load_seconds": load_seconds,
        "base_lookups": base_lookups,
        "runs": runs,
        "paced": paced,
        "base_imports": base_imports,
        "imports": (backlog - left) / import_seconds,
        "imports_left": left,
    }


def report(args: argparse.Namespace, api_workers: int, figures: dict[str, Any]) -> None:
    base: Run = figures["base_lookups"]
    runs: dict[int, Run] = figures["runs"]
    paced: Run = figures["paced"]
    paced_rate = args.paced_rate
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"\n{args.fingerprints} {args.corpus} fingerprints (--corpus) loaded in "
        f"{figures['load_seconds']:.0f} s; load average at the end {load}; "
        f"{args.lookups} lookups per run; api: {api_workers} uvicorn workers; "
        f"{args.worker_processes} worker processes"
    )
    print(
        "baseline: Matcher.find in-process, sequential (lookups); "
        "SubmissionImporter in-process, sequential (imports)"
    )
    rows: list[tuple[str, float, float | None, str]] = [
        ("lookups/s, 1 client", runs[1].rate, base.rate, ""),
        ("lookup p50 ms, 1 client", ms(runs[1].latencies, 50), ms(base.latencies, 50), ""),
        ("lookup p99 ms, 1 client", ms(runs[1].latencies, 99), ms(base.latencies, 99), ""),
        ("lookups/s, 16 clients", runs[16].rate, base.rate, ">= 400"),
        ("lookup p50 ms, 16 clients", ms(runs[16].latencies, 50), ms(base.latencies, 50), ""),
        ("lookup p99 ms, 16 clients", ms(runs[16].latencies, 99), ms(base.latencies, 99), ""),
        (f"lookups/s offered {paced_rate:.0f}/s", paced.rate, base.rate, f">= {paced_rate:.0f}"),
        (f"p50 ms at {paced_rate:.0f}/s, 16 clients", ms(paced.latencies, 50), None, ""),
        (f"p99 ms at {paced_rate:.0f}/s, 16 clients", ms(paced.latencies, 99), None, "< 20"),
        ("api CPU ms per lookup, 16 clients", runs[16].cpu_ms, None, "<= 1.5"),
        (
            "own track first (share)",
            runs[16].found_first / max(1, runs[16].expected),
            base.found_first / max(1, base.expected),
            "",
        ),
        ("imports/s (workers)", figures["imports"], figures["base_imports"], ">= 1500"),
    ]
    print(f"{'figure':34} {'ours':>10} {'baseline':>10} {'ratio':>8}  target")
    for name, ours, baseline, target in rows:
        ratio = f"{ours / baseline:8.3f}" if baseline else " " * 8
        shown = f"{baseline:10.2f}" if baseline is not None else " " * 10
        print(f"{name:34} {ours:10.2f} {shown} {ratio}  {target}")
    versus = figures["versus"]
    if versus:
        print(
            f"\napi CPU ms per lookup, 16 clients, {ROUNDS} alternating rounds against "
            f"{args.also_from}: this tree {versus['this']:.2f}, older {versus['older']:.2f}, "
            f"ratio {versus['this'] / versus['older']:.3f}"
        )
    if figures["imports_left"]:
        print(f"warning: {figures['imports_left']} submissions still pending at the deadline")


if __name__ == "__main__":
    main()
