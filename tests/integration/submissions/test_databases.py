"""The engines of `open_databases` on the real PostgreSQL: bounded pools, the configured
size winning over the process kind's."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from sqlalchemy import text

from acoustid_stack.config import DatabasesSettings, Settings
from acoustid_stack.submissions.databases import open_databases

pytestmark = pytest.mark.integration

CONCURRENT = 6


def on_maintenance_database(settings: Settings, pool_size: int | None) -> DatabasesSettings:
    # literal queries only: the maintenance database needs no schema
    target = dataclasses.replace(settings.database.app, name="postgres", pool_size=pool_size)
    return dataclasses.replace(settings.database, app=target, fingerprint=target, ingest=target)


def backends_used(settings: DatabasesSettings, pool_size: int) -> int:
    """How many PostgreSQL backends CONCURRENT simultaneous queries on one engine used."""

    async def scenario() -> set[int]:
        databases = open_databases(settings, pool_size=pool_size)
        try:

            async def backend() -> int:
                async with databases.app.connect() as conn:
                    result = await conn.execute(text("SELECT pg_backend_pid(), pg_sleep(0.2)"))
                    return int(result.scalar_one())

            return set(await asyncio.gather(*(backend() for _ in range(CONCURRENT))))
        finally:
            await databases.dispose()

    return len(asyncio.run(scenario()))


def test_an_engine_never_opens_more_connections_than_its_pool_size(
    test_settings: Settings,
) -> None:
    # SQLAlchemy's default overflow would have opened one per query
    assert backends_used(on_maintenance_database(test_settings, None), pool_size=2) == 2


def test_a_configured_pool_size_overrides_the_size_the_process_asks_for(
    test_settings: Settings,
) -> None:
    assert backends_used(on_maintenance_database(test_settings, 3), pool_size=2) == 3
