"""Cold and warm start of `acoustid-stack up`, against starting PostgreSQL alone.

Cold: a new data folder (initdb, migrations, first API key). Warm: the same folder again.
The baseline, measured in the same run, is initdb + start of the pip-shipped PostgreSQL
alone — the floor any local stack pays. Target: cold start under 20 s on a 2-core machine.

    python bench/local_stack_bench.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from acoustid_stack.local.credentials import ensure_secret
from acoustid_stack.local.process import free_port
from acoustid_stack.local.servers import start_postgres, unprivileged_user
from acoustid_stack.local.stack import DEFAULT_PORTS
from acoustid_stack.local.supervisor import read_state


def timed_up(data_dir: Path) -> float:
    """Seconds from spawning `up` until every service is running; then stops it."""
    start = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "acoustid_stack", "up", "--data-dir", str(data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"up exited with {process.returncode}; see {data_dir}/logs")
            state = read_state(data_dir)
            if state and all(s["state"] == "running" for s in state["services"]):
                return time.monotonic() - start
            if time.monotonic() - start > 180:
                raise SystemExit("up was not ready in 180 s")
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)


def timed_postgres(work: Path) -> float:
    start = time.monotonic()
    password_file = work / "pg-password"
    ensure_secret(password_file, owner=unprivileged_user())
    process, _ = start_postgres(
        work / "pg",
        free_port(),
        log_path=work / "pg.log",
        password_file=password_file,
        prefer_pip=True,
    )
    elapsed = time.monotonic() - start
    process.stop()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cold, warm, baseline = [], [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="acoustid-bench-") as tmp:
            work = Path(tmp)
            work.chmod(0o755)
            baseline.append(timed_postgres(work))
            data = work / "stack"
            data.mkdir()
            ports = {name: free_port() for name in DEFAULT_PORTS}
            (data / "ports.json").write_text(json.dumps(ports))
            cold.append(timed_up(data))
            warm.append(timed_up(data))
    base = statistics.median(baseline)
    print(f"runs: {args.runs}")
    print(f"baseline  PostgreSQL initdb+start  median {base:6.2f} s")
    for name, values in (("cold up", cold), ("warm up", warm)):
        median = statistics.median(values)
        print(
            f"{name:9s} all services running  median {median:6.2f} s  "
            f"(min {min(values):.2f}, max {max(values):.2f})  = {median / base:.1f}x baseline"
        )
    print(f"target: cold start < 20 s -> {'met' if statistics.median(cold) < 20 else 'MISSED'}")


if __name__ == "__main__":
    main()
