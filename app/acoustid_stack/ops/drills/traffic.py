"""Steady submissions through the public API during a drill, and what was acknowledged.

An acknowledged submission is one the API answered `ok` with an id for: from then on it
must never be lost (DESIGN.md §2). The drill compares this list with the database after
recovery.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from acoustid_stack.fingerprint import encode_fingerprint

HASHES = 240  # 30 s of audio at ~8 hashes per second
DURATION = 30


@dataclass(frozen=True)
class Ack:
    id: int
    at: float  # wall-clock seconds (time.time()), comparable with PostgreSQL's now()
    fingerprint: str


@dataclass
class Traffic:
    acks: list[Ack] = field(default_factory=list)
    failures: list[float] = field(default_factory=list)


def synthetic_fingerprint(seed: int) -> str:
    rng = np.random.default_rng(seed)
    return encode_fingerprint(rng.integers(0, 2**32, size=HASHES, dtype=np.uint32))


def submit(http: httpx.Client, client_key: str, user_key: str, fingerprint: str) -> int:
    """One submission; its id, or an exception when the API did not acknowledge it."""
    response = http.post(
        "/v2/submit",
        data={
            "client": client_key,
            "user": user_key,
            "fingerprint.0": fingerprint,
            "duration.0": DURATION,
            "mbid.0": str(uuid.uuid4()),
            "format": "json",
        },
    )
    body: dict[str, Any] = response.json()
    if body.get("status") != "ok":
        raise RuntimeError(f"submit answered {response.status_code}: {body.get('error')}")
    return int(body["submissions"][0]["id"])


class Writer(threading.Thread):
    """Submits `rate` fingerprints per second until stopped; every outcome is recorded."""

    def __init__(
        self, *, api_url: str, client_key: str, user_key: str, rate: float, seed: int = 1
    ) -> None:
        super().__init__(name="drill-writer", daemon=True)
        self.api_url = api_url
        self.client_key = client_key
        self.user_key = user_key
        self.interval = 1.0 / rate
        self.seed = seed * 1_000_000
        self.traffic = Traffic()
        self._halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.api_url, timeout=2.0) as http:
            n = 0
            while not self._halt.wait(self.interval):
                n += 1
                fingerprint = synthetic_fingerprint(self.seed + n)
                try:
                    submission_id = submit(http, self.client_key, self.user_key, fingerprint)
                except (httpx.HTTPError, RuntimeError, ValueError):
                    self.traffic.failures.append(time.time())
                    continue
                self.traffic.acks.append(Ack(submission_id, time.time(), fingerprint))

    def stop(self) -> Traffic:
        self._halt.set()
        self.join(10)
        return self.traffic
