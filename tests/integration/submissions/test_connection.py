"""What a NATS connection does when the servers go away: a service's reconnects forever and
logs the outage once; a one-shot command's fails fast with a message. A nats-server of the
test's own, started from the binary on a free loopback port (the machine's stays up)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from acoustid_stack.config import NatsSettings
from acoustid_stack.local.endpoints import NatsEndpoint
from acoustid_stack.local.process import ManagedProcess, free_port
from acoustid_stack.local.servers import nats_process
from acoustid_stack.submissions.connection import (
    NatsUnreachable,
    Reconnect,
    ServiceConnection,
    connect_nats,
)
from worker_support import eventually

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

LOGGER = "acoustid_stack.submissions.connection"
#: nats-py's default budget: after this many failed reconnects the connection closed for good
OLD_RECONNECT_ATTEMPTS = 60


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[tuple[ManagedProcess, NatsEndpoint]]:
    """A nats-server of this test's own, not started, and its address."""
    made = nats_process(tmp_path / "nats", free_port(), log_path=tmp_path / "nats.log")
    yield made
    made[0].stop()


def settings_for(test_settings: Any, endpoint: NatsEndpoint, wait: float) -> NatsSettings:
    """The session's NATS settings on `endpoint`, `wait` seconds between attempts."""
    return dataclasses.replace(test_settings.nats, servers=[endpoint.url], reconnect_wait=wait)


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


async def test_a_one_shot_connection_fails_fast_naming_the_servers_and_the_key(
    test_settings: Any, nats_server: tuple[ManagedProcess, NatsEndpoint]
) -> None:
    settings = settings_for(test_settings, nats_server[1], 0.05)  # not started: nobody listens

    with pytest.raises(NatsUnreachable) as raised:
        await connect_nats(settings, reconnect=Reconnect.FAIL_FAST)

    message = str(raised.value)
    assert f"NATS is not reachable at {settings.servers[0]}" in message
    assert "Connect call failed" in message
    assert "ACOUSTID_NATS_SERVERS" in message


async def test_a_service_connection_outlives_an_outage_longer_than_the_old_reconnect_budget(
    test_settings: Any,
    nats_server: tuple[ManagedProcess, NatsEndpoint],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, endpoint = nats_server
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    connection = ServiceConnection(settings=settings_for(test_settings, endpoint, 0.02))
    try:
        # down at start: the start does not wait for it, and the service has no JetStream yet
        await connection.start(wait=0.2)
        assert connection.jetstream() is None
        server.start()
        server.wait_ready(15.0)
        await eventually(lambda: _connected(connection), "the connection is made")

        server.kill()
        await eventually(lambda: _not_connected(connection), "the connection notices")
        failed = len(messages(caplog, logging.DEBUG))

        async def past_the_old_budget() -> bool:
            return len(messages(caplog, logging.DEBUG)) - failed > OLD_RECONNECT_ATTEMPTS

        await eventually(past_the_old_budget, "more reconnects failed than nats-py allowed")
        assert connection.jetstream() is None
        server.start()
        server.wait_ready(15.0)
        await eventually(lambda: _connected(connection), "the connection is back")
        js = connection.jetstream()
        assert js is not None
        assert (await js.account_info()).streams >= 0  # answers requests again
    finally:
        await connection.close()

    warnings, infos = messages(caplog, logging.WARNING), messages(caplog, logging.INFO)
    # each outage logged once when it starts and once when it ends, not once per attempt
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("NATS not reachable: ")
    assert warnings[1].startswith("NATS connection lost")
    assert len(infos) == 2, infos
    assert all(info.startswith("NATS connection back") for info in infos)


async def _connected(connection: ServiceConnection) -> bool:
    return connection.jetstream() is not None


async def _not_connected(connection: ServiceConnection) -> bool:
    return connection.jetstream() is None


async def test_closing_a_service_connection_that_never_reached_nats_stops_its_attempts(
    test_settings: Any,
    nats_server: tuple[ManagedProcess, NatsEndpoint],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    connection = ServiceConnection(settings=settings_for(test_settings, nats_server[1], 0.02))
    await connection.start(wait=0.1)
    await connection.close()
    attempts = len(messages(caplog, logging.DEBUG))
    await asyncio.sleep(0.2)  # ten reconnect waits: an attempt still running would log
    assert len(messages(caplog, logging.DEBUG)) == attempts
    assert connection.jetstream() is None
