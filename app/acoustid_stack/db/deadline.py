"""Give up waiting on a database call without cancelling it.

Cancelling an async SQLAlchemy call half-way (``asyncio.wait_for`` around a connect or a
query) frees its pool slot while the abandoned connection stays open until the garbage
collector finds it, so the pool holds more connections than its bound: measured with a pool
of 1 and probes cancelled after 0.5–10 ms, PostgreSQL saw 2 of its connections at once. The
bound is what max_connections is sized from (``sizing.PROCESS_CONNECTIONS``), so probes with a
deadline wait for a shielded call instead: the caller moves on, the call finishes in the
background and hands its connection back to the pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

# abandoned calls, kept referenced so they run to their end
_running: set[asyncio.Future[Any]] = set()


async def within(call: Awaitable[T], seconds: float) -> T:
    """`call`'s result, or TimeoutError after `seconds` while `call` carries on."""
    task = asyncio.ensure_future(call)
    _running.add(task)
    task.add_done_callback(_finished)
    return await asyncio.wait_for(asyncio.shield(task), seconds)


def _finished(task: asyncio.Future[Any]) -> None:
    _running.discard(task)
    # retrieved here, so a failure of a call nobody waits for any more is not reported as
    # "never retrieved"; whoever still waited has it already
    if not task.cancelled() and (exc := task.exception()) is not None:
        logger.debug("database call failed: %r", exc)
