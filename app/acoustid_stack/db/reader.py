"""Read-only queries of the lookup path, straight on psycopg with its own pool.

SQLAlchemy's async layer costs ≈ 0.6–1 ms of CPU per query (greenlet hop, pool checkout,
result processing; measured against the same query on psycopg), which was most of a lookup's
CPU. The reads of the api's hot path therefore skip it; everything that writes stays on
SQLAlchemy Core.

Connections are in autocommit (no BEGIN/ROLLBACK round trips) and are not pinged on checkout.
A read that fails because its connection broke (PostgreSQL restarted or failed over) makes
the pool check its idle connections and is retried once: reads are safe to repeat.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, LiteralString

import psycopg
from psycopg_pool import AsyncConnectionPool

from acoustid_stack.config import DatabaseSettings
from acoustid_stack.db.int4_arrays import INT4_ARRAY_OID, Int4ArrayLoader

logger = logging.getLogger(__name__)

Params = Sequence[Any] | Mapping[str, Any]


class Reader:
    """A pool of at most `max_size` read-only connections to one database (a configured
    `[database] pool_size` wins); connects on first use, a read finding all busy waits."""

    def __init__(self, target: DatabaseSettings, *, max_size: int) -> None:
        self._pool = AsyncConnectionPool(
            target.conninfo(),
            min_size=0,
            max_size=target.pool_size or max_size,
            kwargs={"autocommit": True},
            configure=_configure,
            timeout=target.pool_timeout,
            open=False,
            name=f"reader-{target.name}",
        )

    async def fetch(self, query: LiteralString, params: Params = ()) -> list[tuple[Any, ...]]:
        """All rows of `query`, values in binary format (int4[] as NumPy int32 arrays)."""
        if self._pool.closed:
            # first use: opening is idempotent and locked inside the pool
            await self._pool.open()
        try:
            return await self._fetch(query, params)
        except psycopg.OperationalError as exc:
            logger.warning("read failed (%s); checking pooled connections and retrying", exc)
            await self._pool.check()
            return await self._fetch(query, params)

    async def close(self) -> None:
        await self._pool.close()  # a pool never opened is already closed: nothing to do

    async def _fetch(self, query: LiteralString, params: Params) -> list[tuple[Any, ...]]:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(query, params, binary=True)
            return await cursor.fetchall()


async def _configure(connection: psycopg.AsyncConnection[Any]) -> None:
    connection.adapters.register_loader(INT4_ARRAY_OID, Int4ArrayLoader)
