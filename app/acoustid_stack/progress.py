"""Proof that a service loop makes progress, served as `/_health` beside `/metrics`.

The worker and cron have no HTTP server of their own, so a liveness probe cannot ask them
"are you alive": a process whose event loop is stuck (a consumer blocked on a fetch that never
returns, a cron job hanging on a lock) still has a listening socket. Instead each loop calls
`Heartbeat.beat()` once per round, and `/_health` answers 503 once the last beat is older
than `max_age`: the orchestrator restarts a process that stopped making progress, never one
that is merely waiting out an outage (the waiting loops beat too).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable
from http.server import ThreadingHTTPServer
from typing import TypeVar
from urllib.parse import urlsplit

from prometheus_client import MetricsHandler

HEALTH_PATH = "/_health"

T = TypeVar("T")


class Heartbeat:
    """The time of a loop's last round; healthy while it is at most `max_age` seconds old.

    Starts as just beaten, so a process has `max_age` seconds to reach its loop."""

    def __init__(self, max_age: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self._clock = clock
        self._last = clock()

    def beat(self) -> None:
        self._last = self._clock()

    def age(self) -> float:
        return self._clock() - self._last

    def healthy(self) -> bool:
        return self.age() <= self.max_age


async def beating(work: Awaitable[T], heartbeat: Heartbeat, *, every: float = 1.0) -> T:
    """`work`'s result, beating `heartbeat` every `every` seconds until it is done: for waits
    that are an outage, not a stuck loop (a broker that is not up yet at start)."""

    async def beat() -> None:
        while True:
            heartbeat.beat()
            await asyncio.sleep(every)

    beater = asyncio.create_task(beat())
    try:
        return await work
    finally:
        beater.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beater


class _Handler(MetricsHandler):
    """`/_health` from the heartbeat; every other path is prometheus_client's `/metrics`."""

    heartbeat: Heartbeat

    def do_GET(self) -> None:
        if urlsplit(self.path).path != HEALTH_PATH:
            super().do_GET()
            return
        age = self.heartbeat.age()
        healthy = self.heartbeat.healthy()
        body = (
            f"{'ok' if healthy else 'stalled'}: last progress {age:.1f} s ago "
            f"(limit {self.heartbeat.max_age:.0f} s)\n"
        ).encode()
        self.send_response(200 if healthy else 503)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # a probe every few seconds and a scrape every 30 s would drown the service's log
        return


def start_health_server(host: str, port: int, heartbeat: Heartbeat) -> ThreadingHTTPServer:
    """Serve `/metrics` (the default registry) and `/_health` on (host, port) from a daemon
    thread; port 0 picks a free one (`server.server_address`)."""
    handler = type("HealthHandler", (_Handler,), {"heartbeat": heartbeat})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
