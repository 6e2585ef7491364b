"""JetStream without a leader for a moment is waited out, never a crash."""

from __future__ import annotations

import asyncio

import pytest
from nats.js.errors import ServiceUnavailableError

from acoustid_stack.worker import consumer
from acoustid_stack.worker.consumer import retry_transient


def test_an_operation_is_retried_until_jetstream_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumer, "RETRY_INITIAL", 0.01)
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ServiceUnavailableError
        return "bound"

    assert asyncio.run(retry_transient(asyncio.Event(), "binding", flaky)) == "bound"
    assert calls == 3


def test_a_stop_interrupts_the_backoff_and_ends_the_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(consumer, "RETRY_INITIAL", 60.0)
    calls = 0

    async def scenario() -> tuple[str | None, float]:
        stop = asyncio.Event()

        async def never() -> str:
            nonlocal calls
            calls += 1
            raise ServiceUnavailableError

        loop = asyncio.get_running_loop()
        loop.call_later(0.2, stop.set)
        started = loop.time()
        result = await retry_transient(stop, "fetching", never)
        return result, loop.time() - started

    result, elapsed = asyncio.run(scenario())
    assert result is None
    assert calls == 1
    assert elapsed < 30  # far below the 60 s backoff it would otherwise sleep out


def test_other_errors_are_not_swallowed() -> None:
    async def broken() -> str:
        raise ValueError("not a transient JetStream state")

    with pytest.raises(ValueError, match="not a transient"):
        asyncio.run(retry_transient(asyncio.Event(), "binding", broken))
