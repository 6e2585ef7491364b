"""Heartbeat ageing, `beating` during a wait, and `/_health` beside `/metrics`."""

from __future__ import annotations

import asyncio

import httpx

from acoustid_stack.progress import HEALTH_PATH, Heartbeat, beating, start_health_server


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_heartbeat_is_healthy_until_its_last_beat_is_older_than_the_limit() -> None:
    clock = Clock()
    heartbeat = Heartbeat(10.0, clock=clock)
    clock.now += 10.0
    assert heartbeat.healthy()
    clock.now += 0.1
    assert not heartbeat.healthy()
    heartbeat.beat()
    assert heartbeat.healthy()
    assert heartbeat.age() == 0.0


def test_beating_keeps_the_heartbeat_fresh_while_the_wait_lasts_and_stops_after() -> None:
    heartbeat = Heartbeat(0.2)

    async def main() -> str:
        return await beating(asyncio.sleep(0.6, result="done"), heartbeat, every=0.05)

    assert asyncio.run(main()) == "done"
    assert heartbeat.age() < 0.2


def test_health_answers_503_once_stalled_and_metrics_are_still_served() -> None:
    clock = Clock()
    heartbeat = Heartbeat(5.0, clock=clock)
    server = start_health_server("127.0.0.1", 0, heartbeat)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        healthy = httpx.get(url + HEALTH_PATH)
        assert (healthy.status_code, healthy.text) == (
            200,
            "ok: last progress 0.0 s ago (limit 5 s)\n",
        )
        clock.now += 6
        stalled = httpx.get(url + HEALTH_PATH)
        assert stalled.status_code == 503
        assert stalled.text.startswith("stalled: last progress 6.0 s ago")
        assert "python_info" in httpx.get(url + "/metrics").text
    finally:
        server.shutdown()
