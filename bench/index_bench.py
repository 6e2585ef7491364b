"""Benchmark of the fingerprint index over HTTP, with a brute-force NumPy baseline.

Workload (issue 4): N synthetic fingerprints of 120 uint32 query terms each, shaped like
`extract_query` output (28-bit values, low 4 bits zero, distinct within a fingerprint),
inserted over HTTP in batches; then searches with noisy variants (70 % of the terms
kept, the rest random): latency p50/p99 with 1 client, throughput with 8 clients,
recall@1; server RSS and disk bytes per fingerprint. The same queries run against a
brute-force NumPy scan of the same data in this process; figures print as ratios to it.

    python bench/index_bench.py                      # starts our server on a free port
    python bench/index_bench.py --url http://127.0.0.1:8080 --server-pid PID --data-dir D

Any fpindex-compatible server works with --url (e.g. the upstream Zig fpindex).
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgpack
import numpy as np

TERMS = 120
KEEP = 0.7
MSGPACK = "application/vnd.msgpack"


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


def results_of(reply: Any) -> list[tuple[int, int]]:
    items = reply.get("results", reply.get("r", []))
    return [(r.get("id", r.get("i")), r.get("score", r.get("s"))) for r in items]


def make_data(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    terms = rng.integers(0, 1 << 28, size=(n, TERMS), dtype=np.uint32) << np.uint32(4)
    # distinct within a fingerprint, like extract_query: redraw the rare duplicates
    terms.sort(axis=1)
    dup = np.zeros_like(terms, dtype=bool)
    dup[:, 1:] = terms[:, 1:] == terms[:, :-1]
    while dup.any():
        terms[dup] = rng.integers(0, 1 << 28, size=int(dup.sum()), dtype=np.uint32) << 4
        terms.sort(axis=1)
        dup[:, 1:] = terms[:, 1:] == terms[:, :-1]
    rng.permuted(terms, axis=1, out=terms)
    return terms


def make_queries(terms: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    targets = rng.choice(len(terms), size=count, replace=False)
    queries = terms[targets].copy()
    keep = round(TERMS * KEEP)
    for row in queries:
        noise = rng.permutation(TERMS)[keep:]
        row[noise] = rng.integers(0, 1 << 28, size=len(noise), dtype=np.uint32) << 4
    return targets + 1, queries  # document id = row + 1 (ids are non-zero)


def brute_force(terms: np.ndarray, query: np.ndarray, limit: int = 10) -> list[tuple[int, int]]:
    """Score of every document = distinct query terms it holds, by a full scan."""
    q = np.unique(query)
    pos = np.searchsorted(q, terms)
    hit = q[np.minimum(pos, len(q) - 1)] == terms
    scores = hit.sum(axis=1)
    top = np.argsort(-scores, kind="stable")[:limit]
    return [(int(i) + 1, int(scores[i])) for i in top if scores[i] > 0]


def percentile(values: list[float], p: float) -> float:
    return float(np.percentile(np.array(values), p))


@contextlib.contextmanager
def own_server(keep_dir: Path | None) -> Iterator[tuple[str, int, Path]]:
    data_dir = keep_dir or Path(tempfile.mkdtemp(prefix="index-bench-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = shutil.which("acoustid-stack")
    assert exe, "acoustid-stack is not installed (pip install -e .)"
    log = (data_dir.parent / f"index-bench-{port}.log").open("wb")
    proc = subprocess.Popen(
        [exe, "run", "index", "--dir", str(data_dir), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(OSError):
                Http(url, "json").call("GET", "/_health")
                break
            time.sleep(0.1)
        yield url, proc.pid, data_dir
    finally:
        proc.terminate()
        proc.wait(60)
        if keep_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)


def rss(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def wait_settled(client: Http, index: str, max_wait: float) -> tuple[float, int]:
    """Wait until the segment count stops changing for 60 s (merges done)."""
    started = time.monotonic()
    last, stable_since = None, time.monotonic()
    while time.monotonic() - started < max_wait:
        info = client.call("GET", f"/{index}")
        stats = info.get("stats", info.get("s", {}))
        segments = int(stats.get("num_segments", 0))
        if segments != last:
            last, stable_since = segments, time.monotonic()
        elif time.monotonic() - stable_since >= 60:
            break
        time.sleep(0.5)
    return time.monotonic() - started, int(last or 0)


def search_all(url: str, fmt: str, index: str, queries: np.ndarray, clients: int) -> Any:
    latencies: list[float] = []
    results: list[list[tuple[int, int]]] = [[] for _ in range(len(queries))]
    lock = threading.Lock()

    def worker(part: range) -> None:
        client = Http(url, fmt)
        mine = []
        for i in part:
            body = {"query": queries[i].tolist(), "limit": 10}
            if fmt == "msgpack":
                body = {"q": body["query"], "l": 10}
            t0 = time.perf_counter()
            reply = client.call("POST", f"/{index}/_search", body)
            mine.append(time.perf_counter() - t0)
            results[i] = results_of(reply)
        with lock:
            latencies.extend(mine)

    parts = [range(k, len(queries), clients) for k in range(clients)]
    threads = [threading.Thread(target=worker, args=(p,)) for p in parts]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return latencies, results, len(queries) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--fingerprints", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--baseline-queries", type=int, default=20)
    parser.add_argument("--url", help="fpindex-compatible server (default: start ours)")
    parser.add_argument("--server-pid", type=int, help="PID of --url's server, for RSS")
    parser.add_argument("--data-dir", type=Path, help="data directory, for disk bytes")
    parser.add_argument("--index", default="bench")
    parser.add_argument("--format", choices=["msgpack", "json"], default="msgpack")
    parser.add_argument("--settle", type=float, default=300, help="max seconds to wait merges")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    n = args.fingerprints
    t0 = time.perf_counter()
    terms = make_data(n, args.seed)
    targets, queries = make_queries(terms, args.queries, args.seed)
    print(f"data: {n} fingerprints x {TERMS} terms in {time.perf_counter() - t0:.1f} s", flush=True)

    server = (
        contextlib.nullcontext((args.url, args.server_pid, args.data_dir))
        if args.url
        else own_server(args.data_dir)
    )
    with server as (url, pid, data_dir):
        client = Http(url, args.format)
        with contextlib.suppress(RuntimeError):
            client.call("DELETE", f"/{args.index}")
        client.call("PUT", f"/{args.index}", {})

        started = time.perf_counter()
        for first in range(0, n, args.batch):
            rows = terms[first : first + args.batch].tolist()
            if args.format == "msgpack":
                changes = [{"i": {"i": first + k + 1, "h": r}} for k, r in enumerate(rows)]
                body: dict[str, Any] = {"c": changes}
            else:
                changes = [
                    {"insert": {"id": first + k + 1, "hashes": r}} for k, r in enumerate(rows)
                ]
                body = {"changes": changes}
            client.call("POST", f"/{args.index}/_update", body)
            if first and first % (100 * args.batch) == 0:
                rate = first / (time.perf_counter() - started)
                print(f"  inserted {first} ({rate:.0f}/s)", flush=True)
        insert_rate = n / (time.perf_counter() - started)
        print(f"insert: {insert_rate:.0f} fingerprints/s", flush=True)

        settle, segments = wait_settled(client, args.index, args.settle)
        print(f"settled in {settle:.0f} s at {segments} segments", flush=True)

        # warm-up, then 1 client and 8 clients
        search_all(url, args.format, args.index, queries[:200], 1)
        lat1, res1, qps1 = search_all(url, args.format, args.index, queries, 1)
        lat8, _, qps8 = search_all(url, args.format, args.index, queries, 8)
        recall = float(
            np.mean([bool(r) and r[0][0] == t for r, t in zip(res1, targets, strict=True)])
        )
        memory = rss(pid) if pid else {}
        disk = disk_bytes(data_dir / args.index) if data_dir else 0

    # baseline: brute-force scan of the same data, same queries (a sample: it is slow)
    sample = range(min(args.baseline_queries, len(queries)))
    base_lat, agree, base_hits = [], 0, 0
    for i in sample:
        t1 = time.perf_counter()
        expected = brute_force(terms, queries[i])
        base_lat.append(time.perf_counter() - t1)
        base_hits += bool(expected) and expected[0][0] == targets[i]
        agree += res1[i][:1] == expected[:1]
    base_p50 = percentile(base_lat, 50)
    base_qps1 = 1 / float(np.mean(base_lat))
    raw_bytes = terms.nbytes + 4 * n  # terms matrix + ids

    p50, p99 = percentile(lat1, 50) * 1000, percentile(lat1, 99) * 1000
    rows = [
        ("search p50 (ms), 1 client", p50, base_p50 * 1000, "<= 1.75"),
        ("search p99 (ms), 1 client", p99, percentile(base_lat, 99) * 1000, "<= 2.1"),
        ("p50 (ms), 8 clients", percentile(lat8, 50) * 1000, None, ""),
        ("searches/s, 1 client", qps1, base_qps1, ""),
        ("searches/s, 8 clients", qps8, base_qps1, ">= 660"),
        ("insert fingerprints/s", insert_rate, None, ">= 17000"),
        ("recall@1", recall, base_hits / len(sample), ">= 0.99"),
    ]
    if memory:
        rows += [
            ("server RSS B/fp", memory["VmRSS"] / n, raw_bytes / n, "<= 600"),
            ("  of which anonymous B/fp", memory["RssAnon"] / n, None, ""),
            ("  of which file-mapped B/fp", memory["RssFile"] / n, None, ""),
            ("server peak RSS B/fp", memory["VmHWM"] / n, None, ""),
        ]
    if disk:
        rows.append(("disk B/fp", disk / n, raw_bytes / n, ""))
    print(f"\n{n} fingerprints, {len(queries)} queries, format {args.format}, {url}")
    print(f"baseline: brute-force NumPy scan, {len(sample)} queries, in-process")
    print(f"top-1 agreement with brute force: {agree}/{len(sample)}")
    print(f"{'figure':32} {'ours':>10} {'baseline':>10} {'ratio':>8}  target")
    for name, ours, base, target in rows:
        ratio = f"{ours / base:8.3f}" if base else " " * 8
        base_text = f"{base:10.2f}" if base is not None else " " * 10
        print(f"{name:32} {ours:10.2f} {base_text} {ratio}  {target}")
    sys.stdout.flush()
    os._exit(0)  # skip freeing the 0.5 GB test matrix


if __name__ == "__main__":
    main()
