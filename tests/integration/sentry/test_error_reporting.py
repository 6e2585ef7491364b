"""Every process reports its unhandled errors to Sentry (issue 21).

A tiny Sentry-compatible receiver listens on loopback for the SDK's envelope POSTs
(`/api/<project>/envelope/`); each test runs the real `acoustid-stack run <process>` with the
DSN given as a file (`ACOUSTID_SENTRY_DSN_FILE`, as Docker and Kubernetes secrets mount it) and
makes a real dependency fail: a database that refuses connections, a file where the index
wants a folder. No test-only code path in the product.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from acoustid_stack import __version__
from acoustid_stack.config import Settings, load_settings
from acoustid_stack.config.settings import NatsSettings
from acoustid_stack.db.migrate import upgrade
from acoustid_stack.local.process import ManagedProcess, free_port
from acoustid_stack.local.servers import http_ok, index_process, running
from acoustid_stack.submissions.connection import Reconnect, close_nats, connect_nats
from acoustid_stack.submissions.stream import ensure_stream, publish_submissions

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROJECT = "4711"
#: a loopback port nothing listens on: connections to it are refused at once
REFUSING_PORT = "9"
EVENT_WAIT = 30.0
Event = dict[str, Any]


class SentryReceiver:
    """Collects the events of the envelopes POSTed to `/api/<PROJECT>/envelope/`."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.paths: list[str] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.received(self.path, body)
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self._server.server_port}/{PROJECT}"

    def received(self, path: str, envelope: bytes) -> None:
        # envelope: a header line, then per item a header line and a payload line
        lines = envelope.split(b"\n")
        events = [
            json.loads(payload)
            for header, payload in zip(lines[1::2], lines[2::2], strict=False)
            if json.loads(header).get("type") == "event"
        ]
        with self._changed:
            self.paths.append(path)
            self.events += events
            self._changed.notify_all()

    def wait_for(self, match: Callable[[Event], bool], timeout: float = EVENT_WAIT) -> Event:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [event for event in self.events if match(event)]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    summary = [(e.get("tags"), _exception_type(e)) for e in self.events]
                    raise AssertionError(f"no such event in {timeout:.0f} s; received {summary}")
                self._changed.wait(left)

    def of(self, process: str) -> list[Event]:
        with self._changed:
            return [e for e in self.events if e.get("tags", {}).get("process") == process]

    def __enter__(self) -> SentryReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _exception_type(event: Event) -> str | None:
    values = event.get("exception", {}).get("values", [])
    return str(values[-1]["type"]) if values else None


def _from(process: str, exception: str) -> Callable[[Event], bool]:
    return lambda event: (
        event.get("tags", {}).get("process") == process and _exception_type(event) == exception
    )


@pytest.fixture(scope="module")
def sentry() -> Iterator[SentryReceiver]:
    with SentryReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def environ(
    test_environ: dict[str, str],
    test_settings: Settings,
    sentry: SentryReceiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """The session's environment (migrated databases) with the DSN as a secret file."""
    list(upgrade(test_settings.database))
    dsn_file = tmp_path_factory.mktemp("secrets") / "sentry_dsn"
    dsn_file.write_text(sentry.dsn + "\n")
    dsn_file.chmod(0o600)
    base = {k: v for k, v in os.environ.items() if not k.startswith("ACOUSTID_")}
    return {
        **base,
        **test_environ,
        "ACOUSTID_SENTRY_DSN_FILE": str(dsn_file),
        "ACOUSTID_SENTRY_ENVIRONMENT": "sentry-test",
    }


@dataclass(frozen=True)
class IndexServer:
    url: str
    data: Path


@pytest.fixture(scope="module")
def index_server(
    environ: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IndexServer]:
    """A real index server reporting to the receiver (the worker's index, too)."""
    data = tmp_path_factory.mktemp("index")
    made = index_process(data / "data", free_port(), log_path=data / "index.log", env=environ)
    with running(made) as url:
        yield IndexServer(url, data / "data")


def _process(
    name: str, args: list[str], env: dict[str, str], log: Path, ready: Callable[[], bool]
) -> ManagedProcess:
    return ManagedProcess(
        name=name,
        argv=[sys.executable, "-m", "acoustid_stack", "run", name, *args],
        log_path=log,
        ready=ready,
        env=env,
    )


def _assert_reported(event: Event) -> None:
    assert event["release"] == f"acoustid-stack@{__version__}"
    assert event["environment"] == "sentry-test"
    assert event["level"] == "error"


def test_api_reports_an_unhandled_error_but_not_a_client_error(
    sentry: SentryReceiver, environ: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**environ, "ACOUSTID_DATABASE_PORT": REFUSING_PORT}
    api = _process(
        "api",
        ["--port", str(port), "--workers", "1"],
        env,
        tmp_path / "api.log",
        lambda: http_ok(f"{base}/v2/openapi.json"),
    )
    with running((api, base)):
        assert httpx.get(f"{base}/v2/nothing-here").status_code == 404
        assert httpx.get(f"{base}/v2/lookup", params={"format": "bogus"}).status_code == 400
        # the API key check needs the app database, which refuses
        params = {"client": "somekey", "duration": "100", "fingerprint": "AQAAAA"}
        failed = httpx.get(f"{base}/v2/lookup", params={**params, "format": "json"})
        assert failed.status_code == 500
        event = sentry.wait_for(_from("api", "OperationalError"))
    _assert_reported(event)
    assert event["transaction"] == "/v2/lookup"
    assert [_exception_type(e) for e in sentry.of("api")] == ["OperationalError"]
    assert all(path == f"/api/{PROJECT}/envelope/" for path in sentry.paths)


def test_web_reports_an_unhandled_error_but_not_a_missing_page(
    sentry: SentryReceiver, environ: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **environ,
        "ACOUSTID_DATABASE_PORT": REFUSING_PORT,
        "ACOUSTID_WEB_PORT": str(port),
        "ACOUSTID_WEB_WORKERS": "1",
    }
    web = _process("web", [], env, tmp_path / "web.log", lambda: http_ok(f"{base}/"))
    with running((web, base), timeout=60):
        assert httpx.get(f"{base}/no-such-page").status_code == 404
        # the statistics are read from the app database, which refuses
        assert httpx.get(f"{base}/stats").status_code == 500
        event = sentry.wait_for(lambda event: event.get("tags", {}).get("process") == "web")
    _assert_reported(event)
    assert event["transaction"] == "/stats"
    assert event["exception"]["values"][-1]["mechanism"] == {"type": "starlette", "handled": False}
    assert len(sentry.of("web")) == 1, "the 404 was reported too"


def test_index_reports_an_unhandled_error_but_not_a_missing_index(
    sentry: SentryReceiver, index_server: IndexServer
) -> None:
    base = index_server.url
    assert httpx.get(f"{base}/missing").status_code == 404
    # a file where the new index's folder must go: creating the index fails
    (index_server.data / "blocked").write_text("")
    assert httpx.put(f"{base}/blocked", json={}).status_code == 500
    event = sentry.wait_for(_from("index", "NotADirectoryError"))
    _assert_reported(event)
    assert [_exception_type(e) for e in sentry.of("index")] == ["NotADirectoryError"]


def test_worker_reports_a_batch_that_fails(
    sentry: SentryReceiver, index_server: IndexServer, environ: dict[str, str], tmp_path: Path
) -> None:
    suffix = secrets.token_hex(3)
    env = {
        **environ,
        "ACOUSTID_INDEX_SHARDS": index_server.url,
        "ACOUSTID_NATS_STREAM": f"{environ['ACOUSTID_NATS_STREAM']}_{suffix.upper()}",
        "ACOUSTID_NATS_SUBJECT_PREFIX": f"{environ['ACOUSTID_NATS_SUBJECT_PREFIX']}_{suffix}",
        # the worker imports into the databases, which refuse
        "ACOUSTID_DATABASE_PORT": REFUSING_PORT,
    }
    metrics = free_port()
    worker = _process(
        "worker",
        ["--metrics-port", str(metrics)],
        env,
        tmp_path / "worker.log",
        lambda: http_ok(f"http://127.0.0.1:{metrics}/_health"),
    )
    nats = load_settings(path=None, environ=env).nats
    with running((worker, None)):
        asyncio.run(_publish(nats, [4242]))
        event = sentry.wait_for(_from("worker", "OperationalError"))
    _assert_reported(event)
    assert "import of a batch" in event["logentry"]["message"]


async def _publish(settings: NatsSettings, ids: list[int]) -> None:
    nc = await connect_nats(settings, reconnect=Reconnect.FAIL_FAST)
    try:
        js = nc.jetstream()
        await ensure_stream(js, settings)
        await publish_submissions(js, settings, ids)
    finally:
        await close_nats(nc)


def test_cron_reports_a_job_that_fails(
    sentry: SentryReceiver, environ: dict[str, str], tmp_path: Path
) -> None:
    # the leader lock is on the app database (up); the outbox job reads the ingest one
    env = {**environ, "ACOUSTID_DATABASE_INGEST_PORT": REFUSING_PORT}
    metrics = free_port()
    cron = _process(
        "cron",
        ["--metrics-port", str(metrics)],
        env,
        tmp_path / "cron.log",
        lambda: http_ok(f"http://127.0.0.1:{metrics}/_health"),
    )
    with running((cron, None)):
        event = sentry.wait_for(_from("cron", "OperationalError"))
    _assert_reported(event)
    assert "cron job" in event["logentry"]["message"]


CRASH = """
from acoustid_stack.config import load_settings
from acoustid_stack.sentry_setup import init_sentry

def sign(settings):
    material = settings.website.secret  # a frame variable Sentry's own scrubber does not know
    raise RuntimeError(f"cannot sign with {material}")


settings = load_settings()
assert init_sentry(settings, process="crash")
sign(settings)
"""


def test_a_crash_is_reported_with_configured_secrets_masked(
    sentry: SentryReceiver, environ: dict[str, str], tmp_path: Path
) -> None:
    website_secret = "ws-" + secrets.token_hex(8)
    env = {**environ, "ACOUSTID_WEBSITE_SECRET": website_secret}
    result = subprocess.run(
        [sys.executable, "-c", CRASH],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "RuntimeError" in result.stderr
    event = sentry.wait_for(_from("crash", "RuntimeError"))
    _assert_reported(event)
    value = event["exception"]["values"][-1]["value"]
    assert value == "cannot sign with ***"
    frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
    assert frames[-1]["vars"]["material"] == "'***'"
    assert website_secret not in json.dumps(event)
