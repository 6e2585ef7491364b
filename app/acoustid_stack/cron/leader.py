"""Leader election with a PostgreSQL session advisory lock.

Why PostgreSQL and not a Redis lock with a TTL: the lock lives exactly as long as the
leader's database session, so a dead leader (crash, kill -9, lost host) releases it without
any TTL to tune or clock to trust, and a leader that lost its session knows it at once and
stops. The jobs write to PostgreSQL anyway, so it is no new dependency.

Failover time: a standby retries every `retry_interval` (5 s). A leader process that dies
closes its socket, and the server frees the lock immediately; a leader *host* that vanishes
is noticed by the server's TCP keepalives set below (10 s idle + 3 × 5 s probes), so the
lock is free within about 25 s and taken over within 30 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib

import psycopg

from acoustid_stack.progress import Heartbeat

logger = logging.getLogger(__name__)

#: Lock key in PostgreSQL's bigint advisory-lock space (stable across versions).
CRON_LEADER_LOCK = zlib.crc32(b"acoustid-stack.cron.leader")
_KEEPALIVES = (
    "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3"
)


class LeaderElection:
    """Holds (or waits for) the cron leader lock on one dedicated connection."""

    def __init__(
        self, *, conninfo: str, key: int = CRON_LEADER_LOCK, retry_interval: float = 5.0
    ) -> None:
        self._conninfo = conninfo
        self._key = key
        self.retry_interval = retry_interval
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None

    async def wait_until_leader(
        self, stop: asyncio.Event, *, heartbeat: Heartbeat | None = None
    ) -> bool:
        """Try the lock every `retry_interval` until held (True) or `stop` is set (False);
        each try beats `heartbeat`.

        Database errors are logged and retried: a standby outlives a PostgreSQL restart.
        """
        while not stop.is_set():
            if heartbeat is not None:
                heartbeat.beat()
            try:
                if await self._try_lock():
                    return True
            except psycopg.Error as exc:
                logger.warning("cannot reach PostgreSQL for the leader lock: %s", exc)
                await self._close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.retry_interval)
        return False

    async def still_leader(self) -> bool:
        """Whether the lock's session is alive; False (and the session closed) otherwise."""
        if self._conn is None:
            return False
        try:
            await self._conn.execute("SELECT 1")
        except psycopg.Error as exc:
            logger.error("lost the leader lock's database session: %s", exc)
            await self._close()
            return False
        return True

    async def resign(self) -> None:
        """Release the lock (closing the session releases it in any case)."""
        await self._close()

    async def _try_lock(self) -> bool:
        if self._conn is None:
            self._conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            await self._conn.execute(_KEEPALIVES)
        cursor = await self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,))
        row = await cursor.fetchone()
        return bool(row and row[0])

    async def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self._conn.close()
            self._conn = None
