"""Connections to NATS, and what each does when the servers go away.

Failure policy, by who connects (`Reconnect`):
- services (api, worker, cron, web) reconnect forever, every `nats.reconnect_wait` seconds
  plus up to 25 % jitter drawn once per process (a fleet that lost its servers at the same
  moment spreads out instead of knocking in step); the outage is logged once when it starts
  and once when it ends, the failed attempts in between only at DEBUG. nats-py's default
  (60 attempts, 2 s apart) would close the connection after two minutes for good.
- one-shot commands (ops, drills, tests) try every server twice, `nats.reconnect_wait`
  apart, then fail with `NatsUnreachable`, a message naming the servers and the key to fix.

A service that must not wait for NATS at start (api, web) connects in the background
(`ServiceConnection`); worker and cron have nothing to do without it and wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
from typing import Any, Final

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import StaleConnectionError
from nats.js import JetStreamContext

from acoustid_stack.config import NatsSettings
from acoustid_stack.errors import UserError

logger = logging.getLogger(__name__)

#: a service waits reconnect_wait × (1 … 1 + JITTER) between attempts, drawn once per process
JITTER: Final = 0.25
#: what a live connection reports just before it counts as lost (UnexpectedEOF is one)
_CONNECTION_LOST = (StaleConnectionError, OSError)


class Reconnect(enum.Enum):
    """What a connection does when the NATS servers go away."""

    #: long-running services: reconnect until the process stops; never give up
    FOREVER = "forever"
    #: one-shot commands: no reconnects; connecting fails fast with `NatsUnreachable`
    FAIL_FAST = "fail-fast"


class NatsUnreachable(UserError):
    """No configured NATS server accepted a one-shot command's connection."""


async def connect_nats(settings: NatsSettings, *, reconnect: Reconnect) -> Client:
    """Connect to the configured servers; credentials from user/password or a creds file.

    `Reconnect.FOREVER` returns only once a server answered (retrying forever, so race it
    against shutdown); `Reconnect.FAIL_FAST` raises `NatsUnreachable` within a few seconds.
    """
    client = Client()
    options: dict[str, Any] = {
        "servers": settings.servers,
        "name": "acoustid-stack",
        "user": settings.user,
        "password": settings.password if settings.user else None,
        "user_credentials": settings.creds_file,
    }
    if reconnect is Reconnect.FOREVER:
        wait = settings.reconnect_wait * (1 + random.uniform(0, JITTER))
        log = _OutageLog(client, settings.servers, wait)
        try:
            await client.connect(
                **options,
                max_reconnect_attempts=-1,
                reconnect_time_wait=wait,  # type: ignore[arg-type]  # nats-py sleeps a float
                error_cb=log.error,
                disconnected_cb=log.disconnected,
                reconnected_cb=log.reconnected,
            )
        except asyncio.CancelledError:
            await client.close()  # stops the half-made connection's tasks
            raise
        log.connected()
        return client
    errors: list[Exception] = []

    async def remember(exc: Exception) -> None:
        errors.append(exc)

    try:
        await client.connect(
            **options,
            allow_reconnect=False,
            # the smallest budget nats-py has: each server twice (0 would mean forever)
            max_reconnect_attempts=1,
            reconnect_time_wait=settings.reconnect_wait,  # type: ignore[arg-type]
            error_cb=remember,
        )
    except (NatsError, OSError, TimeoutError) as exc:
        cause = errors[-1] if errors else exc
        raise NatsUnreachable(
            f"NATS is not reachable at {', '.join(settings.servers)}: "
            f"{str(cause) or type(cause).__name__}; is it running? "
            "(servers: nats.servers / ACOUSTID_NATS_SERVERS)"
        ) from exc
    return client


async def close_nats(client: Client) -> None:
    """Close `client`, also in the middle of an outage: nats-py then writes what it buffered
    (pull requests, publishes) into the dead socket and raises (ConnectionResetError,
    RuntimeError "handler is closed"); nothing can reach the servers then anyway."""
    try:
        await client.close()
    except (OSError, RuntimeError, NatsError) as exc:
        logger.debug("closing the NATS connection during an outage: %s", exc)


class ServiceConnection:
    """A service's NATS connection made in the background, so that NATS being down at start
    (or later) blocks nothing: `jetstream()` is None until a server answers and while the
    connection is away; nats-py reconnects it forever (`Reconnect.FOREVER`)."""

    def __init__(self, *, settings: NatsSettings) -> None:
        self._settings = settings
        self._task: asyncio.Task[Client] | None = None

    async def start(self, *, wait: float) -> None:
        """Start connecting (once); return when connected or after `wait` seconds."""
        if self._task is None:
            self._task = asyncio.create_task(
                connect_nats(self._settings, reconnect=Reconnect.FOREVER)
            )
            self._task.add_done_callback(_log_failure)
        await asyncio.wait({self._task}, timeout=wait)

    def jetstream(self) -> JetStreamContext | None:
        """JetStream on the connection while it is connected, else None (never waits)."""
        client = self._client()
        return client.jetstream() if client is not None and client.is_connected else None

    def _client(self) -> Client | None:
        task = self._task
        if task is None or not task.done() or task.cancelled() or task.exception() is not None:
            return None
        return task.result()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return
        if not task.cancelled() and task.exception() is None:
            await close_nats(task.result())


def _log_failure(task: asyncio.Task[Client]) -> None:
    """A FOREVER connect only ends by connecting or being cancelled; anything else is a bug
    that would leave the service without NATS, so it must not pass silently."""
    if not task.cancelled() and task.exception() is not None:
        logger.error("connecting to NATS failed for good", exc_info=task.exception())


class _OutageLog:
    """Logs a service connection's outages once each: lost (or not reachable at start), then
    back; every failed attempt in between at DEBUG only."""

    def __init__(self, client: Client, servers: list[str], wait: float) -> None:
        self._client = client
        self._servers = ", ".join(servers)
        self._pool = len(servers)
        self._wait = wait
        self._down_since: float | None = None
        self._cause = ""
        self._failed_at_start = 0

    def _down(self, what: str) -> None:
        if self._down_since is not None:
            return
        self._down_since = time.monotonic()
        logger.warning(
            "NATS %s (%s); reconnecting every %.3g s until it is back",
            what,
            self._servers,
            self._wait,
        )

    def connected(self) -> None:
        """A server answered: ends the outage, if one was logged."""
        self._cause = ""
        if self._down_since is None:
            return
        url = self._client.connected_url
        logger.info(
            "NATS connection back (%s) after %.1f s",
            url.netloc if url else self._servers,
            time.monotonic() - self._down_since,
        )
        self._down_since = None

    async def error(self, exc: Exception) -> None:
        detail = str(exc) or type(exc).__name__
        client = self._client
        if client.is_connected and not isinstance(exc, _CONNECTION_LOST):
            logger.warning("NATS error: %s", detail)  # e.g. a permissions violation
            return
        logger.debug("NATS: %s", detail)
        self._cause = detail  # of the disconnect about to be logged, if one is
        if not (client.is_connected or client.is_reconnecting or client.is_closed):
            # at start: down once every server of the pool failed (the next one may answer)
            self._failed_at_start += 1
            if self._failed_at_start >= self._pool:
                self._down(f"not reachable: {detail}")

    async def disconnected(self) -> None:
        if not self._client.is_closed:  # closing it ourselves is no outage
            self._down(f"connection lost: {self._cause}" if self._cause else "connection lost")

    async def reconnected(self) -> None:
        self.connected()
