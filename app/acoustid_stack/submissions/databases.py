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


def open_databases(settings: DatabasesSettings, *, pool_size: int | None = None) -> Databases:
    """Engines for app, fingerprint and ingest (read-write); connections open lazily.

    `pool_ping` is on: a worker outlives a PostgreSQL failover, and a stale pooled connection
    must be replaced rather than fail the next import.
    """

    def engine(name: DatabaseName) -> AsyncEngine:
        target = settings.get(name)
        return create_async_engine(
            target.sqlalchemy_url(),
            pool_size=pool_size or target.pool_size,
            pool_timeout=target.pool_timeout,
            pool_pre_ping=True,
        )

    return Databases(app=engine("app"), fingerprint=engine("fingerprint"), ingest=engine("ingest"))
