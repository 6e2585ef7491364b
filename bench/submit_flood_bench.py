"""Probe latency while the api is flooded with the largest submissions (issue 17 item 4).

One `acoustid-stack run api` worker (a single event loop: the worst case) on this machine's
PostgreSQL, Redis and NATS (throwaway databases, keys and stream, as `api_bench.py`), with
`--clients` threads each POSTing one largest submission after another, while a probe GETs
`/_health_ro` every 20 ms. Two floods:
- "largest valid": fingerprints of MAX_FINGERPRINT_HASHES hashes (stored, published);
- "oversize": ~2,000,000 hashes in a 1 MiB body (refused with error 3).
Reported: probe p50/p99/max and submissions/s. The target is probe p99 < 100 ms.

    python bench/submit_flood_bench.py --clients 4 --seconds 20
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import httpx
import numpy as np

from acoustid_stack.api.fingerprint_param import MAX_FINGERPRINT_HASHES
from acoustid_stack.config import load_settings
from acoustid_stack.db import migrate
from acoustid_stack.fingerprint import encode_fingerprint
from acoustid_stack.local.process import free_port
from acoustid_stack.local.services import Services
from api_bench import INDEX_NAME, clean_up, create_keys, environ_for, ms, process

OVERSIZE_HASHES = 2_000_000  # only terminators: 3 bits per hash, ~1 MiB of base64
PROBE_INTERVAL = 0.02


def submission(client_key: str, user_key: str, hashes: np.ndarray) -> bytes:
    return urlencode(
        {
            "client": client_key,
            "user": user_key,
            "duration": str(len(hashes) // 8),
            "mbid": str(uuid.uuid4()),
            "fingerprint": encode_fingerprint(hashes),
        }
    ).encode()


def flood(url: str, body: bytes, clients: int, seconds: float) -> tuple[list[float], int, dict]:
    """(probe latencies in s, submissions answered, their status counts)."""
    stop = threading.Event()
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def submitter() -> None:
        with httpx.Client(timeout=60) as http:
            while not stop.is_set():
                response = http.post(
                    f"{url}/v2/submit",
                    content=body,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
                with lock:
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    threads = [threading.Thread(target=submitter) for _ in range(clients)]
    for thread in threads:
        thread.start()
    latencies = []
    with httpx.Client(timeout=10) as http:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            http.get(f"{url}/_health_ro")
            latencies.append(time.perf_counter() - started)
            time.sleep(PROBE_INTERVAL)
    stop.set()
    for thread in threads:
        thread.join()
    return latencies, sum(statuses.values()), statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    rng = np.random.default_rng(17)
    # few changed bits per hash, as real audio gives
    changes = np.uint32(1) << rng.integers(0, 32, MAX_FINGERPRINT_HASHES, dtype=np.uint32)
    largest = np.bitwise_xor.accumulate(changes)
    oversize = np.zeros(OVERSIZE_HASHES, dtype=np.uint32)
    prefix = f"acoustid_floodbench_{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory(prefix="flood-bench-") as tmp:
        work = Path(tmp)
        (work / "services").mkdir()
        with Services(work_dir=work / "services") as services:
            environ = environ_for(services, prefix)
            try:
                settings = load_settings(path=None, environ=environ)
                for _ in migrate.upgrade(settings.database):
                    pass
                client_key, user_key, _, _ = create_keys(settings)
                index_port = free_port()
                index_url = f"http://127.0.0.1:{index_port}"
                index_argv = ["run", "index", "--dir", str(work / "index")]
                index_argv += ["--port", str(index_port), "--create", INDEX_NAME]
                with process("index", index_argv, work, environ, f"{index_url}/_health"):
                    environ["ACOUSTID_INDEX_SHARDS"] = index_url
                    environ["ACOUSTID_WEBSITE_SHUTDOWN_FILE"] = str(work / "api-shutdown")
                    environ["ACOUSTID_WEBSITE_SHUTDOWN_DELAY"] = "0"
                    port = free_port()
                    api_argv = ["run", "api", "--port", str(port), "--workers", "1"]
                    url = f"http://127.0.0.1:{port}"
                    with process("api", api_argv, work, environ, f"{url}/_health_docker"):
                        for name, hashes in (("largest valid", largest), ("oversize", oversize)):
                            body = submission(client_key, user_key, hashes)
                            latencies, count, statuses = flood(
                                url, body, args.clients, args.seconds
                            )
                            worst = max(latencies) * 1000
                            print(
                                f"{name} ({len(hashes):,} hashes, {len(body):,} bytes), "
                                f"{args.clients} clients: {count / args.seconds:.1f} submits/s "
                                f"{statuses}; /_health_ro p50 {ms(latencies, 50):.1f} ms, "
                                f"p99 {ms(latencies, 99):.1f} ms, max {worst:.1f} ms",
                                flush=True,
                            )
            finally:
                clean_up(services, prefix)


if __name__ == "__main__":
    main()
