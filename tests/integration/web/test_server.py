"""`acoustid-stack run web` as a real uvicorn process, with the workers its configuration asks."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from acoustid_stack.config import Settings
from acoustid_stack.db.migrate import upgrade
from acoustid_stack.local.process import ManagedProcess, free_port
from acoustid_stack.local.servers import http_ok, running
from api_support import ACOUSTID_STACK

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def server_workers(pid: int) -> list[int]:
    """The processes uvicorn spawned from `pid` to serve requests (not its resource tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # after the parenthesised command: state, then the parent's pid
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            spawned = b"spawn_main" in (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid and spawned:
            found.append(int(stat.parent.name))
    return found


def test_run_web_serves_from_the_configured_number_of_workers(
    test_environ: dict[str, str], test_settings: Settings, tmp_path: Path
) -> None:
    list(upgrade(test_settings.database))
    port = free_port()
    # [web] comes from the file, so the workers must read the same file the command was given
    config = tmp_path / "acoustid.conf"
    config.write_text(f"[web]\nport = {port}\nworkers = 2\n")
    url = f"http://127.0.0.1:{port}"
    process = ManagedProcess(
        name="web",
        argv=[*ACOUSTID_STACK, "--config", str(config), "run", "web"],
        log_path=tmp_path / "web.log",
        ready=lambda: http_ok(f"{url}/_health"),
        env={**os.environ, **test_environ},
        stop_signal=signal.SIGTERM,
    )
    with running((process, url), timeout=60):
        assert process.pid is not None
        assert len(server_workers(process.pid)) == 2
        for _ in range(6):
            # a new connection each time, so both workers get some
            page = httpx.get(f"{url}/", timeout=10)
            assert page.status_code == 200
            assert "PostgreSQL fingerprint" in page.text
    assert not process.running()
