"""Benchmark of the fingerprint index over HTTP on three workloads, with a brute-force baseline.

Workloads (issue 15), N fingerprints each (default 1M):
- `realistic`: query terms from bench/corpus.py, whose statistics are measured from real
  `fpcalc` output (heavy-tailed term popularity, measured per-fingerprint term counts);
- `uniform32`: 120 distinct uniformly random 32-bit terms (what flatters an index);
- `lowbit22`: 120 distinct terms below 2^22 (all entropy in the low bits, long postings).

Each runs against a fresh server: inserts over HTTP in batches (fingerprints/s), waits for
merges to settle, then searches degraded copies of stored fingerprints (70 % of the terms
kept, the rest drawn from the workload's own distribution): latency p50/p99 with 1 client,
throughput with 8 clients, recall@1; server RSS steady (B/fp) and peak during inserts and
merges; restart to first answered search. The same queries run against a brute-force NumPy
scan of the same data in this process; figures print as ratios to it.

    python bench/index_bench.py --docs 50000             # starts our server on free ports
    python bench/index_bench.py --workloads lowbit22      # one workload
    python bench/index_bench.py --url http://127.0.0.1:8080 --server-pid PID --data-dir D

Any fpindex-compatible server works with --url (e.g. the upstream Zig fpindex); restart
is then not measured.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgpack
import numpy as np

from acoustid_stack.errors import UserError
from corpus import DEFAULT_CACHE, STATS_FILE, Corpus, Terms, compare, distinct_rows

TERMS = 120
KEEP = 0.7
MSGPACK = "application/vnd.msgpack"
WORKLOADS = ("realistic", "uniform32", "lowbit22")
#: the issue 15 targets, as (figure, test, text)
TARGETS: dict[str, tuple[Callable[[float], bool], str]] = {
    "p99_ms": (lambda v: v <= 2, "<= 2 ms"),
    "qps8": (lambda v: v >= 2000, ">= 2000/s"),
    "insert": (lambda v: v >= 30000, ">= 30000/s"),
    "rss_bfp": (lambda v: v <= 400, "<= 400 B/fp"),
    "peak_ratio": (lambda v: v <= 1.5, "<= 1.5x"),
    "restart_s": (lambda v: v <= 2, "<= 2 s"),
    "recall": (lambda v: v >= 0.99, ">= 0.99"),
}


class Http:
    """One keep-alive connection; msgpack or JSON bodies."""

    def __init__(self, url: str, fmt: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port or 80, timeout=600
        )
        self.fmt = fmt

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {}
        payload = None
        if body is not None:
            if self.fmt == "msgpack":
                payload = msgpack.packb(body)
                headers = {"Content-Type": MSGPACK, "Accept": MSGPACK}
            else:
                payload = json.dumps(body).encode()
                headers = {"Content-Type": "application/json"}
        self.conn.request(method, path, body=payload, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
        content_type = response.getheader("Content-Type", "")
        if content_type.startswith(MSGPACK):
            return msgpack.unpackb(data)
        if content_type.startswith("application/json") and data:
            return json.loads(data)
        return data

    def search(self, index: str, query: np.ndarray) -> list[tuple[int, int]]:
        terms = query.tolist()
        body = {"q": terms, "l": 10} if self.fmt == "msgpack" else {"query": terms, "limit": 10}
        reply = self.call("POST", f"/{index}/_search", body)
        items = reply.get("results", reply.get("r", []))
        return [(r.get("id", r.get("i")), r.get("score", r.get("s"))) for r in items]


# --- workloads ---------------------------------------------------------------------------------


@dataclass
class Workload:
    name: str
    terms: Terms
    draw: Callable[[int, np.random.Generator], np.ndarray]


def uniform_draw(bits: int) -> Callable[[int, np.random.Generator], np.ndarray]:
    def draw(size: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, 1 << bits, size=size, dtype=np.uint64).astype(np.uint32)

    return draw


def make_workload(name: str, n: int, seed: int, corpus: Corpus | None) -> Workload:
    if name == "realistic":
        assert corpus is not None
        return Workload(name, corpus.query_terms(n, seed), corpus.draw)
    draw = uniform_draw(32 if name == "uniform32" else 22)
    rng = np.random.default_rng([seed, 32])
    chunks = [
        distinct_rows(draw, min(50_000, n - first), TERMS, rng) for first in range(0, n, 50_000)
    ]
    return Workload(name, Terms.from_matrix(np.concatenate(chunks)), draw)


def make_queries(work: Workload, count: int, seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Degraded copies of `count` stored fingerprints: KEEP of their terms, the rest drawn from
    the workload's distribution (a noisy copy meets common terms, not fresh ones)."""
    rng = np.random.default_rng([seed, 5])
    targets = rng.choice(len(work.terms), size=min(count, len(work.terms)), replace=False)
    queries = []
    for t in targets:
        row = work.terms.row(int(t)).copy()
        replace = rng.permutation(row.size)[round(row.size * KEEP) :]
        while replace.size:  # distinct terms, as extract_query gives: redraw repeats
            row[replace] = work.draw(replace.size, rng)
            _, inverse, counts = np.unique(row, return_inverse=True, return_counts=True)
            replace = replace[counts[inverse[replace]] > 1]
        queries.append(row)
    return targets + 1, queries  # document id = row + 1 (ids are non-zero)


class BruteForce:
    """The baseline: a full scan of every stored term per query. Membership goes through a
    2^20-entry table of the hashed query terms, the few candidates are checked exactly; the
    score of a document is the number of distinct query terms it holds."""

    BITS = 20

    def __init__(self, terms: Terms) -> None:
        self.terms = terms
        self.bins = self._bin(terms.flat)

    @classmethod
    def _bin(cls, values: np.ndarray) -> np.ndarray:
        return (values * np.uint32(0x9E3779B1)) >> np.uint32(32 - cls.BITS)  # Fibonacci hash

    def search(self, query: np.ndarray, limit: int = 10) -> list[tuple[int, int]]:
        q = np.unique(query)
        table = np.zeros(1 << self.BITS, dtype=bool)
        table[self._bin(q)] = True
        candidates = np.flatnonzero(table[self.bins])
        hits = candidates[np.isin(self.terms.flat[candidates], q)]
        docs = np.searchsorted(self.terms.offsets, hits, side="right") - 1
        scores = np.bincount(docs, minlength=len(self.terms))
        top = np.argsort(-scores, kind="stable")[:limit]
        return [(int(i) + 1, int(scores[i])) for i in top if scores[i] > 0]


# --- the server --------------------------------------------------------------------------------


class OwnServer:
    """Our index server on a free port over a data directory it keeps across restarts."""

    def __init__(self, data_dir: Path) -> None:
        exe = shutil.which("acoustid-stack")
        if exe is None:
            raise UserError("acoustid-stack is not installed (pip install -e .)")
        self.exe = exe
        self.data_dir = data_dir
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        log = (self.data_dir.parent / f"{self.data_dir.name}.log").open("ab")
        self.proc = subprocess.Popen(
            [self.exe, "run", "index", "--dir", str(self.data_dir), "--port", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for _ in range(600):
            with contextlib.suppress(OSError, RuntimeError):
                Http(self.url, "json").call("GET", "/_health")
                return
            time.sleep(0.05)
        raise RuntimeError(f"index server did not start, see {log.name}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(120)
            self.proc = None


class RssSampler:
    """The highest RSS of a process while running (inserts and merges)."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, rss(self.pid)["VmRSS"] if self.pid else 0)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def rss(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def cpu_seconds(pid: int | None) -> float:
    if not pid:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def wait_settled(
    client: Http, index: str, pid: int | None, max_wait: float, quiet: float
) -> tuple[float, int]:
    """Wait until merges are done: the segment count has not changed for `quiet` seconds and
    the server (when its pid is known) used under 5 % of a core meanwhile (a long merge keeps
    the count but not the CPU still)."""
    started = time.monotonic()
    last, stable_since, cpu_since = None, time.monotonic(), cpu_seconds(pid)
    while time.monotonic() - started < max_wait:
        info = client.call("GET", f"/{index}")
        stats = info.get("stats", info.get("s", {}))
        segments = int(stats.get("num_segments", 0))
        now = time.monotonic()
        if segments != last:
            last, stable_since, cpu_since = segments, now, cpu_seconds(pid)
        elif now - stable_since >= quiet:
            if cpu_seconds(pid) - cpu_since < 0.05 * (now - stable_since):
                break
            stable_since, cpu_since = now, cpu_seconds(pid)
        time.sleep(0.5)
    return time.monotonic() - started, int(last or 0)


def search_all(
    url: str, fmt: str, index: str, queries: list[np.ndarray], clients: int
) -> tuple[list[float], list[list[tuple[int, int]]], float]:
    latencies: list[float] = []
    results: list[list[tuple[int, int]]] = [[] for _ in range(len(queries))]
    lock = threading.Lock()

    def worker(part: range) -> None:
        client = Http(url, fmt)
        mine = []
        for i in part:
            t0 = time.perf_counter()
            results[i] = client.search(index, queries[i])
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)

    parts = [range(k, len(queries), clients) for k in range(clients)]
    threads = [threading.Thread(target=worker, args=(p,)) for p in parts]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, results, len(queries) / (time.perf_counter() - started)


def insert(client: Http, index: str, terms: Terms, batch: int, fmt: str) -> float:
    started = time.perf_counter()
    n = len(terms)
    for first in range(0, n, batch):
        rows = [terms.row(k).tolist() for k in range(first, min(n, first + batch))]
        if fmt == "msgpack":
            body: dict[str, Any] = {
                "c": [{"i": {"i": first + k + 1, "h": r}} for k, r in enumerate(rows)]
            }
        else:
            body = {
                "changes": [
                    {"insert": {"id": first + k + 1, "hashes": r}} for k, r in enumerate(rows)
                ]
            }
        client.call("POST", f"/{index}/_update", body)
        if first and first % (200 * batch) == 0:
            print(f"  inserted {first} ({first / (time.perf_counter() - started):.0f}/s)")
    return n / (time.perf_counter() - started)


def restart_to_first_search(
    server: OwnServer, index: str, fmt: str, query: np.ndarray, timeout: float
) -> tuple[float, float, str]:
    """Seconds from a new server process to its first search with hits (after a clean stop),
    the time the stop took, and the last error when no search answered within `timeout`
    (then the seconds are infinite)."""
    t0 = time.monotonic()
    server.stop()
    stopped = time.monotonic() - t0
    started = time.monotonic()
    server.start()
    client = Http(server.url, fmt)
    error = "no hits"
    while time.monotonic() - started < timeout:
        try:
            if client.search(index, query):
                return time.monotonic() - started, stopped, ""
        except (RuntimeError, OSError) as exc:
            error = str(exc)
            client = Http(server.url, fmt)  # a 503 may have closed the connection
        time.sleep(0.01)
    return float("inf"), stopped, error


def percentile(values: list[float], p: float) -> float:
    return float(np.percentile(np.array(values), p))


@dataclass
class Result:
    name: str
    n: int
    figures: dict[str, float] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


def run_workload(work: Workload, args: argparse.Namespace, server: OwnServer | None) -> Result:
    n = len(work.terms)
    targets, queries = make_queries(work, args.queries, args.seed)
    url = server.url if server else args.url
    pid = server.pid if server else args.server_pid
    data_dir = server.data_dir if server else args.data_dir
    index = f"{args.index}-{work.name}"
    client = Http(url, args.format)
    with contextlib.suppress(RuntimeError):
        client.call("DELETE", f"/{index}")
    client.call("PUT", f"/{index}", {})
    empty = rss(pid)["VmRSS"] if pid else 0

    with RssSampler(pid) as sampler:
        insert_rate = insert(client, index, work.terms, args.batch, args.format)
        print(f"  insert: {insert_rate:.0f} fingerprints/s", flush=True)
        settle, segments = wait_settled(client, index, pid, args.settle, args.quiet)
        print(f"  settled in {settle:.0f} s at {segments} segments", flush=True)

    search_all(url, args.format, index, queries[:200], 1)  # warm-up
    lat1, res1, qps1 = search_all(url, args.format, index, queries, 1)
    lat8, _, qps8 = search_all(url, args.format, index, queries, 8)
    recall = float(np.mean([bool(r) and r[0][0] == t for r, t in zip(res1, targets, strict=True)]))
    memory = rss(pid) if pid else {}
    disk = disk_bytes(data_dir / index) if data_dir else 0
    restart = stop = None
    after_restart = {}
    failure = ""
    if server is not None:
        restart, stop, failure = restart_to_first_search(
            server, index, args.format, queries[0], args.restart_timeout
        )
        after_restart = rss(server.pid)
        print(f"  restart to first search: {restart:.2f} s (stop took {stop:.1f} s)", flush=True)
        if failure:
            print(f"  no search answered after the restart: {failure[:300]}", flush=True)

    # baseline: brute-force scan of the same data, same queries (a sample: it is slow)
    sample = range(min(args.baseline_queries, len(queries)))
    base_lat, agree, same_id, base_hits = [], 0, 0, 0
    baseline = BruteForce(work.terms)
    for i in sample:
        t1 = time.perf_counter()
        expected = baseline.search(queries[i])
        base_lat.append(time.perf_counter() - t1)
        base_hits += bool(expected) and expected[0][0] == targets[i]
        agree += res1[i][:1] == expected[:1]
        same_id += [h[0] for h in res1[i][:1]] == [h[0] for h in expected[:1]]
    base_qps1 = 1 / float(np.mean(base_lat))
    raw_bytes = work.terms.flat.nbytes + 4 * n  # terms + ids

    result = Result(work.name, n)
    f = result.figures
    f["p50_ms"], f["p99_ms"] = percentile(lat1, 50) * 1000, percentile(lat1, 99) * 1000
    f["qps1"], f["qps8"], f["insert"], f["recall"] = qps1, qps8, insert_rate, recall
    rows: list[tuple[str, float, float | None, str]] = [
        ("search p50 (ms), 1 client", f["p50_ms"], percentile(base_lat, 50) * 1000, ""),
        ("search p99 (ms), 1 client", f["p99_ms"], percentile(base_lat, 99) * 1000, "p99_ms"),
        ("p50 (ms), 8 clients", percentile(lat8, 50) * 1000, None, ""),
        ("searches/s, 1 client", qps1, base_qps1, ""),
        ("searches/s, 8 clients", qps8, base_qps1, "qps8"),
        ("insert fingerprints/s", insert_rate, None, "insert"),
        ("recall@1", recall, base_hits / len(sample), "recall"),
    ]
    if memory:
        f["rss_bfp"] = memory["VmRSS"] / n
        f["peak_ratio"] = sampler.peak / memory["VmRSS"]
        rows += [
            ("server RSS steady B/fp", f["rss_bfp"], raw_bytes / n, "rss_bfp"),
            ("  of which anonymous B/fp", memory["RssAnon"] / n, None, ""),
            ("  of which file-mapped B/fp", memory["RssFile"] / n, None, ""),
            ("  empty server B/fp", empty / n, None, ""),
            ("peak RSS inserts+merges B/fp", sampler.peak / n, None, ""),
            ("peak / steady RSS", f["peak_ratio"], None, "peak_ratio"),
        ]
    if after_restart:
        rows.append(("RSS after restart B/fp", after_restart["VmRSS"] / n, None, ""))
    if restart is not None:
        f["restart_s"] = restart
        rows.append(("restart to first search (s)", restart, None, "restart_s"))
    if disk:
        rows.append(("disk B/fp", disk / n, raw_bytes / n, ""))
    lengths = np.diff(work.terms.offsets)
    result.lines += [
        f"\n== {work.name}: {n} fingerprints ({lengths.mean():.1f} terms on average), "
        f"{len(queries)} queries, format {args.format}, {url}",
        f"baseline: brute-force NumPy scan (BruteForce), {len(sample)} queries, in-process; "
        f"top-1 document as its: {same_id}/{len(sample)}, with its score: {agree}; "
        f"settled in {settle:.0f} s at {segments} segments",
        *([f"RESTART FAILED: {failure[:300]}"] if failure else []),
        f"{'figure':32} {'ours':>10} {'baseline':>10} {'ratio':>8}  target",
    ]
    for name, ours, base, key in rows:
        ratio = f"{ours / base:8.3f}" if base else " " * 8
        base_text = f"{base:10.2f}" if base is not None else " " * 10
        target = ""
        if key:
            test, text = TARGETS[key]
            target = f"{text} {'ok' if test(ours) else 'MISSED'}"
        result.lines.append(f"{name:32} {ours:10.2f} {base_text} {ratio}  {target}")
    return result


def summary(results: list[Result]) -> str:
    keys = ["insert", "p50_ms", "p99_ms", "qps1", "qps8", "recall", "rss_bfp", "peak_ratio"]
    keys.append("restart_s")
    lines = [
        "\n== summary",
        f"{'workload':10} " + " ".join(f"{k:>10}" for k in keys),
    ]
    for r in results:
        cells = [f"{r.figures[k]:10.2f}" if k in r.figures else f"{'-':>10}" for k in keys]
        lines.append(f"{r.name:10} " + " ".join(cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--docs", "--fingerprints", type=int, default=1_000_000)
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help=f"comma-separated: {', '.join(WORKLOADS)}"
    )
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--baseline-queries", type=int, default=20)
    parser.add_argument("--url", help="fpindex-compatible server (default: start ours)")
    parser.add_argument("--server-pid", type=int, help="PID of --url's server, for RSS")
    parser.add_argument("--data-dir", type=Path, help="--url's data directory, for disk bytes")
    parser.add_argument("--index", default="bench")
    parser.add_argument("--format", choices=["msgpack", "json"], default="msgpack")
    parser.add_argument("--settle", type=float, default=600, help="max seconds to wait merges")
    parser.add_argument("--quiet", type=float, default=30, help="merges done after this long")
    parser.add_argument("--restart-timeout", type=float, default=120, help="seconds")
    parser.add_argument("--corpus-cache", type=Path, default=DEFAULT_CACHE, help="clip cache")
    parser.add_argument("--corpus-stats", type=Path, default=STATS_FILE, help="measured stats")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    names = args.workloads.split(",")
    unknown = set(names) - set(WORKLOADS)
    if unknown:
        sys.exit(f"error: unknown workload {', '.join(sorted(unknown))}; known: {WORKLOADS}")

    try:
        corpus = (
            Corpus.load_or_build(args.corpus_cache, args.corpus_stats)
            if "realistic" in names
            else None
        )
    except UserError as error:
        sys.exit(f"error: {error}")
    if corpus is not None:
        print(compare(corpus, n=min(args.docs, 100_000), target=args.docs), flush=True)

    results = []
    for name in names:
        t0 = time.perf_counter()
        work = make_workload(name, args.docs, args.seed, corpus)
        print(f"\n{name}: {args.docs} fingerprints in {time.perf_counter() - t0:.1f} s", flush=True)
        if args.url:
            results.append(run_workload(work, args, None))
        else:
            root = Path(tempfile.mkdtemp(prefix="index-bench-"))
            server = OwnServer(root / "data")
            server.start()
            try:
                results.append(run_workload(work, args, server))
            finally:
                server.stop()
                shutil.rmtree(root, ignore_errors=True)
        print("\n".join(results[-1].lines), flush=True)
        del work
    print(summary(results))
    sys.stdout.flush()
    os._exit(0)  # skip freeing the large term arrays


if __name__ == "__main__":
    main()
