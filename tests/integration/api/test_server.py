"""`acoustid-stack run api` as a real uvicorn process with several workers."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from acoustid_stack.fingerprint import encode_fingerprint
from acoustid_stack.local.process import ManagedProcess
from api_support import Catalog, Keys, api_server, random_hashes

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def server(api_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, ManagedProcess, Path]]:
    shutdown_file = tmp_path / "shutdown"
    environ = {
        **api_env,
        "ACOUSTID_WEBSITE_SHUTDOWN_FILE": str(shutdown_file),
        "ACOUSTID_WEBSITE_SHUTDOWN_DELAY": "1",
    }
    with api_server(tmp_path, environ, workers=2) as (url, process):
        yield url, process, shutdown_file


def wait_until(condition: object, what: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"still not {what} after {limit} s")
        time.sleep(0.05)


def test_the_server_answers_lookups_and_aggregates_metrics_over_workers(
    server: tuple[str, ManagedProcess, Path], keys: Keys, catalog: Catalog
) -> None:
    url, _, _ = server
    hashes = random_hashes(31)
    mbid = uuid.uuid4()
    _, gid = catalog.add(hashes, 180, mbids=(mbid,))
    requests = 20
    with httpx.Client(base_url=url, timeout=10) as http:
        for _ in range(requests):
            # a new connection each time, so both workers get some
            body = httpx.post(
                f"{url}/v2/lookup",
                data={
                    "client": keys.client_key,
                    "duration": "180",
                    "fingerprint": encode_fingerprint(hashes),
                    "meta": "recordingids",
                },
            ).json()
            assert body["results"] == [
                {"id": str(gid), "score": 1.0, "recordings": [{"id": str(mbid)}]}
            ]
        assert http.get("/_health").text == "ok"
        metrics = http.get("/metrics").text
    counted = sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "api_requests_total" and sample.labels["endpoint"] == "lookup"
    )
    assert counted == requests


def test_sigterm_turns_health_to_503_then_stops(
    server: tuple[str, ManagedProcess, Path],
) -> None:
    url, process, shutdown_file = server
    assert process.pid is not None
    os.kill(process.pid, signal.SIGTERM)

    def health_is_503() -> bool:
        return httpx.get(f"{url}/_health", timeout=2).status_code == 503

    wait_until(health_is_503, "draining")
    assert httpx.get(f"{url}/_health_ro", timeout=2).text == "shutdown in process"
    wait_until(lambda: not process.running(), "stopped")
    assert process.stop() == 0
    assert not shutdown_file.exists()
