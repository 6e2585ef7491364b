"""`acoustid-stack index rebuild`: seconds to fill an empty index from the fingerprint database
(issue 18: 1M fingerprints in < 60 s).

Setup, on this machine's PostgreSQL (the Services harness) in a throwaway database, and a
private `acoustid-stack run index`: N fingerprints of the realistic corpus (`bench/corpus.py`,
`--corpus uniform` for random hashes) written with binary COPY (`api_bench.load_catalog`).
Then the rebuild command runs against the empty index. Figures: seconds, fingerprints/s, CPU
seconds of the rebuild process and of the index server (from /proc and wait4: on a machine
shared with other work CPU predicts better than the wall clock).

Baseline, in the same run on the same rows: reading them in this process over a server-side
cursor (binary, int4[] as NumPy arrays) and computing `extract_query`, sending nothing: what a
rebuild that only reads costs. `--also-from DIR` first rebuilds a fresh index with the
command of another source tree (DIR/app, e.g. `git archive REV app | tar -x -C DIR`), for a
before/after in the same run; [index] timeout is 60 s for both (older commands used it for
their updates).

    python bench/rebuild_bench.py -n 100000
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg

from acoustid_stack.config import load_settings
from acoustid_stack.db.int4_arrays import INT4_ARRAY_OID, Int4ArrayLoader
from acoustid_stack.db.migrate import upgrade
from acoustid_stack.fingerprint import extract_query
from acoustid_stack.local.process import free_port
from acoustid_stack.local.servers import index_process, running
from acoustid_stack.local.services import Services
from api_bench import CORPORA, Fingerprints, cpu_seconds, load_catalog
from worker_bench import base_environ, child_environ, drop_databases

CLI = [sys.executable, "-m", "acoustid_stack"]


def baseline(conninfo: str, batch: int) -> tuple[float, float]:
    """(seconds, CPU seconds) to read every fingerprint and extract its query terms."""
    started, cpu = time.perf_counter(), time.process_time()
    with psycopg.connect(conninfo) as conn:
        conn.adapters.register_loader(INT4_ARRAY_OID, Int4ArrayLoader)
        with conn.cursor(name="bench", binary=True) as cursor:
            cursor.execute("SELECT id, fingerprint FROM fingerprint ORDER BY id")
            while rows := cursor.fetchmany(batch):
                for _, hashes in rows:
                    extract_query(np.asarray(hashes, dtype=np.int32))
    return time.perf_counter() - started, time.process_time() - cpu


def rebuild(environ: dict[str, str], batch: int, tree: Path | None) -> tuple[float, float]:
    """(seconds, CPU seconds of the command) of `acoustid-stack index rebuild`, from the
    source tree `tree` (None: this one)."""
    env = child_environ(environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree / "app")
    started = time.perf_counter()
    command = subprocess.Popen(
        [*CLI, "index", "rebuild", "--batch", str(batch)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(command.pid, 0)
    seconds = time.perf_counter() - started
    command.returncode = os.waitstatus_to_exitcode(status)
    if command.returncode:
        stderr = command.stderr.read().decode(errors="replace") if command.stderr else ""
        raise SystemExit(f"rebuild failed ({command.returncode}): {stderr[-2000:]}")
    return seconds, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--fingerprints", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000, help="`index rebuild --batch`")
    parser.add_argument("--corpus", choices=CORPORA, default="realistic")
    parser.add_argument("--also-from", type=Path, help="an older source tree to compare with")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    results: dict[str, tuple[float, float, float]] = {}
    source = Fingerprints(args.corpus)
    prefix = f"acoustid_rebuild_{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory(prefix="rebuild-bench-") as tmp, Services() as services:
        work = Path(tmp)
        environ = base_environ(services, prefix)
        settings = load_settings(path=None, environ=environ)
        try:
            list(upgrade(settings.database))
            started = time.perf_counter()
            load_catalog(settings, None, args.fingerprints, args.seed, source)
            loaded = time.perf_counter() - started
            conninfo = settings.database.fingerprint.conninfo()
            base_seconds, base_cpu = baseline(conninfo, args.batch)
            environ["ACOUSTID_INDEX_TIMEOUT"] = "60"
            trees = ([args.also_from] if args.also_from else []) + [None]
            for tree in trees:
                name = "older" if tree else "this"
                made = index_process(
                    work / f"index-{name}",
                    free_port(),
                    log_path=work / f"index-{name}.log",
                    env=child_environ(environ),
                )
                with running(made) as url:
                    environ["ACOUSTID_INDEX_SHARDS"] = url
                    index_pid = made[0].pid or 0
                    index_before = cpu_seconds(index_pid)
                    seconds, cpu = rebuild(environ, args.batch, tree)
                    results[name] = (seconds, cpu, cpu_seconds(index_pid) - index_before)
        finally:
            drop_databases(services, prefix)
    n = args.fingerprints
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"\n{n} {args.corpus} fingerprints (--corpus; loaded in {loaded:.0f} s); "
        f"--batch {args.batch}; load average at the end {load}"
    )
    print("baseline: read + extract_query in this process, nothing sent\n")
    print(f"{'figure':44} {'rebuild':>10} {'baseline':>10} {'ratio':>8}")
    for name, (seconds, cpu, index_cpu) in results.items():
        tree = f" ({args.also_from})" if name == "older" else ""
        rows = [
            (f"{name} tree{tree}: seconds", seconds, base_seconds),
            ("  fingerprints/s", n / seconds, n / base_seconds),
            ("  CPU s, rebuild command", cpu, base_cpu),
            ("  CPU s, index server", index_cpu, None),
        ]
        for label, ours, theirs in rows:
            shown = f"{theirs:10.1f} {ours / theirs:8.2f}" if theirs else ""
            print(f"{label:44} {ours:10.1f} {shown}")
    seconds = results["this"][0]
    print(f"\nat this rate 1,000,000 fingerprints take {1_000_000 * seconds / n:.0f} s (< 60 s?)")


if __name__ == "__main__":
    main()
