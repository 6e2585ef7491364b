"""A live scrape of every process of ours, for the monitoring tests.

`exported` starts a real index, api (uvicorn, 2 processes), worker and cron on this session's
PostgreSQL, Redis and NATS, sends one submission and lookups through the api, waits until the
worker imported it, cron counted the backlog and took an index snapshot, then scrapes each
`/metrics`. The backup metrics come from `acoustid-stack backup`'s own writer (a text file that
node_exporter's textfile collector serves as it is).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from acoustid_stack.config import load_settings
from acoustid_stack.db import migrate
from acoustid_stack.fingerprint.codec import encode_fingerprint
from acoustid_stack.local.process import ManagedProcess, free_port
from acoustid_stack.local.servers import http_ok, running
from acoustid_stack.ops import status
from acoustid_stack.ops.commands import KINDS
from acoustid_stack.ops.layout import BackupRepository
from api_support import ACOUSTID_STACK, Keys, api_environ, api_server, index_server, random_hashes
from monitoring_support import series_names

DEADLINE = 90.0


def _metrics_process(
    name: str, work: Path, environ: dict[str, str], *args: str
) -> tuple[ManagedProcess, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = ManagedProcess(
        name=name,
        argv=[*ACOUSTID_STACK, "run", name, "--metrics-port", str(port), *args],
        log_path=work / f"{name}.log",
        ready=lambda: http_ok(f"{url}/_health"),
        env=environ,
        stop_signal=signal.SIGTERM,
    )
    return process, url


def _scrape(url: str) -> str:
    return httpx.get(f"{url}/metrics", timeout=10).text


def _wait_for(url: str, series: str, work: Path) -> None:
    """Until a sample of `series` (a name, optionally with labels) is at least 1."""
    ends = time.monotonic() + DEADLINE
    while True:
        text = _scrape(url)
        if any(
            line.startswith(series) and float(line.rsplit(" ", 1)[1]) >= 1
            for line in text.splitlines()
        ):
            return
        if time.monotonic() > ends:
            logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in work.rglob("*.log"))
            raise AssertionError(f"no {series} >= 1 at {url} in {DEADLINE} s\n{text}\n{logs}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def exported(
    test_environ: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, set[str]]]:
    """{process: series names it exports}, scraped from running processes after real work."""
    work = tmp_path_factory.mktemp("monitoring")
    with ExitStack() as stack:
        index_url = stack.enter_context(index_server(work / "index"))
        environ = {
            **api_environ(test_environ, index_url, work / "shutdown"),
            "ACOUSTID_INDEX_SNAPSHOT_DIR": str(work / "snapshots"),
        }
        settings = load_settings(path=None, environ=environ)
        for _ in migrate.upgrade(settings.database):
            pass
        keys = Keys(settings)
        child_env = {**os.environ, **environ}
        api_url, _ = stack.enter_context(api_server(work / "api", environ))
        worker_url = stack.enter_context(running(_metrics_process("worker", work, child_env), 60))
        cron_url = stack.enter_context(
            running(_metrics_process("cron", work, child_env, "--retry-interval", "0.2"), 60)
        )

        fingerprint = encode_fingerprint(random_hashes(19))
        form = {"client": keys.client_key, "duration": "200", "fingerprint": fingerprint}
        # without an MBID or metadata a submission is dropped silently, as upstream does
        submission = {**form, "user": keys.user_key, "mbid": str(uuid.uuid4())}
        submitted = httpx.post(f"{api_url}/v2/submit", data=submission)
        assert submitted.json()["submissions"], submitted.text
        _wait_for(worker_url, "worker_imports_total{", work)
        for _ in range(2):  # the imported fingerprint: a search that matches
            assert httpx.post(f"{api_url}/v2/lookup", data=form).status_code == 200
        assert httpx.get(f"{api_url}/v2/lookup").status_code == 400  # an error answer too
        _wait_for(cron_url, "cron_index_snapshot_last_success_timestamp_seconds{", work)
        _wait_for(cron_url, 'cron_job_runs_total{job="count_pending",result="ok"}', work)

        repo = BackupRepository(work / "backup")
        for kind in KINDS:
            status.record(repo, kind, event="success", size=1, at=datetime.now(UTC))
            status.record(repo, kind, event="failure", error="test")
            status.record(repo, kind, event="verified")
        yield {
            "api": series_names(_scrape(api_url)),
            "index": series_names(_scrape(index_url)),
            "worker": series_names(_scrape(worker_url)),
            "cron": series_names(_scrape(cron_url)),
            "backup (textfile)": series_names(repo.metrics_file.read_text()),
        }
