"""The lookup path's psycopg reader, on the real PostgreSQL: int4[] → NumPy, broken connections."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import psycopg
import pytest

from acoustid_stack.config import Settings
from acoustid_stack.db.reader import Reader


def reader_for(settings: Settings, *, max_size: int = 2) -> Reader:
    # literal queries only: the maintenance database needs no schema
    target = dataclasses.replace(settings.database.fingerprint, name="postgres")
    return Reader(target, max_size=max_size)


def test_int4_arrays_arrive_as_int32_numpy_arrays(test_settings: Settings) -> None:
    values = [0, 1, -1, 2**31 - 1, -(2**31), 123456789]

    async def read() -> list[tuple[object, ...]]:
        reader = reader_for(test_settings)
        try:
            return await reader.fetch(
                "SELECT %s::int4[], '{}'::int4[], %s::int4[]", (values, list(range(5000)))
            )
        finally:
            await reader.close()

    [(first, empty, long)] = asyncio.run(read())
    assert isinstance(first, np.ndarray)
    assert first.dtype == np.int32
    assert first.tolist() == values
    assert isinstance(empty, np.ndarray)
    assert empty.size == 0
    assert isinstance(long, np.ndarray)
    assert long.tolist() == list(range(5000))


@pytest.mark.parametrize("literal", ["'{{1,2},{3,4}}'::int4[]", "'{1,NULL,3}'::int4[]"])
def test_arrays_that_are_not_fingerprints_are_refused(
    test_settings: Settings, literal: str
) -> None:
    async def read() -> None:
        reader = reader_for(test_settings)
        try:
            await reader.fetch(f"SELECT {literal}")
        finally:
            await reader.close()

    with pytest.raises(psycopg.DataError, match="one-dimensional"):
        asyncio.run(read())


def test_a_read_on_a_broken_connection_is_retried_on_a_new_one(test_settings: Settings) -> None:
    async def scenario() -> tuple[int, int]:
        reader = reader_for(test_settings, max_size=1)
        try:
            [(before,)] = await reader.fetch("SELECT pg_backend_pid()")
            # what a PostgreSQL restart or failover does to a pooled connection
            with psycopg.connect(
                test_settings.database.fingerprint.conninfo("postgres"), autocommit=True
            ) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (before,))
            [(after,)] = await reader.fetch("SELECT pg_backend_pid()")
            return before, after
        finally:
            await reader.close()

    before, after = asyncio.run(scenario())
    assert before != after


def test_a_reader_never_opens_more_connections_than_its_max_size(
    test_settings: Settings,
) -> None:
    async def scenario() -> set[int]:
        reader = reader_for(test_settings, max_size=2)
        try:
            rows = await asyncio.gather(
                *(reader.fetch("SELECT pg_backend_pid(), pg_sleep(0.2)") for _ in range(6))
            )
            return {row[0][0] for row in rows}
        finally:
            await reader.close()

    assert len(asyncio.run(scenario())) == 2
