"""Helpers shared by the worker integration tests: polling, import counts, index shards.

Importable from any test because the root conftest puts `tests/` on sys.path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from acoustid_stack.db.schema import ingest as ingest_db
from acoustid_stack.local.process import ManagedProcess
from acoustid_stack.submissions.databases import Databases

DEADLINE = 60.0  # polls end as soon as their condition holds


async def eventually(condition: Callable[[], Any], what: str, deadline: float = DEADLINE) -> None:
    """Poll the coroutine function `condition` until it returns true, or fail naming `what`."""
    until = time.monotonic() + deadline
    while not await condition():
        assert time.monotonic() < until, f"timed out waiting until {what}"
        await asyncio.sleep(0.1)


async def handled(databases: Databases, ids: list[int]) -> int:
    """How many of `ids` the worker has handled (imported or rejected)."""
    s = ingest_db.submission
    async with databases.ingest.connect() as conn:
        count = await conn.scalar(
            select(func.count()).where(s.c.id.in_(ids), s.c.handled.is_(True))
        )
    return int(count or 0)


@dataclass(frozen=True)
class IndexShard:
    """A real index server (`acoustid-stack run index`) a test may stop and start again."""

    process: ManagedProcess
    url: str

    def start(self) -> None:
        self.process.start()
        self.process.wait_ready(30)
