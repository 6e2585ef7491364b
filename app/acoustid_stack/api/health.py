"""Health endpoints (text/plain), as probes expect them (reference §7, DESIGN.md §7).

- `/_health`: this server may take writes: not shutting down, cluster role master, and a
  transaction that needs a writable primary succeeds on every database.
- `/_health_ro` (readiness): not shutting down, and the read-only databases answer.
- `/_health_docker` (liveness): the process serves requests and is not shutting down.

"Shutting down" means the shutdown file exists: `run api` writes it on SIGTERM and keeps
serving for `website.shutdown_delay` seconds, so load balancers stop sending traffic first.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from acoustid_stack.db.deadline import within

CHECK_TIMEOUT_SECONDS: Final = 2.0

logger = logging.getLogger(__name__)


class HealthChecks:
    def __init__(
        self,
        *,
        shutdown_file: str,
        is_master: bool,
        writable: Sequence[AsyncEngine],
        readable: Sequence[AsyncEngine],
    ) -> None:
        self._shutdown_file = shutdown_file
        self._is_master = is_master
        self._writable = writable
        self._readable = readable

    async def health(self, request: Request) -> PlainTextResponse:
        if self._shutting_down():
            return _unavailable("shutdown in process")
        if not self._is_master:
            return _unavailable("not the master server")
        # txid_current() assigns a transaction id, which a standby refuses: a real write check
        # without touching any table.
        if not await _all_answer(self._writable, "SELECT txid_current()"):
            return _unavailable("database not writable")
        return PlainTextResponse("ok")

    async def health_ro(self, request: Request) -> PlainTextResponse:
        if self._shutting_down():
            return _unavailable("shutdown in process")
        if not await _all_answer(self._readable, "SELECT 1"):
            return _unavailable("database unavailable")
        return PlainTextResponse("ok")

    async def health_docker(self, request: Request) -> PlainTextResponse:
        if self._shutting_down():
            return _unavailable("shutdown in process")
        return PlainTextResponse("ok")

    def _shutting_down(self) -> bool:
        return os.path.exists(self._shutdown_file)


async def _all_answer(engines: Sequence[AsyncEngine], statement: str) -> bool:
    async def check(engine: AsyncEngine) -> None:
        async with engine.begin() as connection:
            await connection.execute(text(statement))

    try:
        await within(asyncio.gather(*(check(engine) for engine in engines)), CHECK_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure means unhealthy; the reason goes to the log
        logger.warning("health check failed: %s", exc or type(exc).__name__)
        return False
    return True


def _unavailable(reason: str) -> PlainTextResponse:
    return PlainTextResponse(reason, 503)
