"""The three databases as async SQLAlchemy engines, one pool each, for long-running processes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from acoustid_stack.config import DatabaseName, DatabasesSettings


@dataclass(frozen=True)
class Databases:
    app: AsyncEngine
    fingerprint: AsyncEngine
    ingest: AsyncEngine

    async def dispose(self) -> None:
        for engine in (self.app, self.fingerprint, self.ingest):
            await engine.dispose()


def open_databases(settings: DatabasesSettings, *, pool_size: int) -> Databases:
    """Engines for app, fingerprint and ingest (read-write); connections open lazily.

    Each engine holds at most `pool_size` connections (a process passes its kind's size from
    `sizing.PROCESS_CONNECTIONS`; a configured `[database] pool_size` wins) and never more:
    no overflow, a caller waits up to `pool_timeout` for a free one, so PostgreSQL's
    max_connections budget counts exactly these.

    `pool_ping` is on: a worker outlives a PostgreSQL failover, and a stale pooled connection
    must be replaced rather than fail the next import.
    """

    def engine(name: DatabaseName) -> AsyncEngine:
        target = settings.get(name)
        return create_async_engine(
            target.sqlalchemy_url(),
            pool_size=target.pool_size or pool_size,
            max_overflow=0,
            pool_timeout=target.pool_timeout,
            pool_pre_ping=True,
        )

    return Databases(app=engine("app"), fingerprint=engine("fingerprint"), ingest=engine("ingest"))
