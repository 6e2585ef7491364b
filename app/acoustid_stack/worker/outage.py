"""Waiting out a JetStream outage in place: backoff, one log line per transition, metrics.

Failure policy: while the stream or consumer has no leader (a cluster node lost, an election
after a restart, a fresh R3 consumer), cannot be placed on enough servers (10005, an R3 stream
created while a node is missing) or the servers do not answer, the worker waits and
retries with a doubling delay (0.5 s up to 10 s); it never exits for it. Messages stay in the
stream until a worker acks them, so waiting loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from acoustid_stack.worker.metrics import WorkerMetrics

logger = logging.getLogger(__name__)

INITIAL_DELAY = 0.5
MAX_DELAY = 10.0


class Outage:
    """Tracks whether JetStream is answering the worker; logs and counts only transitions."""

    def __init__(
        self,
        *,
        metrics: WorkerMetrics,
        initial_delay: float = INITIAL_DELAY,
        max_delay: float = MAX_DELAY,
    ) -> None:
        self._metrics = metrics
        self._initial = initial_delay
        self._max = max_delay
        self._delay = initial_delay
        self._since: float | None = None

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    async def wait(self, stop: asyncio.Event, cause: str) -> None:
        """Sleep the current backoff delay (cut short by `stop`); the first call of an outage
        logs it and counts it."""
        if self._since is None:
            self._since = time.monotonic()
            self._delay = self._initial
            self._metrics.jetstream_available.set(0)
            self._metrics.jetstream_outages.inc()
            logger.warning(
                "JetStream unavailable (%s); waiting in place, retrying every %.1f–%.0f s",
                cause,
                self._initial,
                self._max,
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=self._delay)
        self._delay = min(self._delay * 2, self._max)

    def over(self) -> None:
        """JetStream answered: end the outage, if one is ongoing."""
        self._metrics.jetstream_available.set(1)
        if self._since is None:
            return
        logger.info("JetStream available again after %.1f s", time.monotonic() - self._since)
        self._since = None
