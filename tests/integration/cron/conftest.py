"""Cron tests: the session's databases migrated, and cron processes started on demand."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from acoustid_stack.config import Settings
from acoustid_stack.db.migrate import upgrade


@pytest.fixture(scope="session")
def migrated_settings(test_settings: Settings) -> Settings:
    list(upgrade(test_settings.database))
    return test_settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class CronProcess:
    """A `acoustid-stack run cron` child whose log goes to a file the test can read."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def became_leader(self) -> int:
        return self.output().count("became the cron leader")


@pytest.fixture
def start_cron(
    migrated_settings: Settings, test_environ: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., CronProcess]]:
    started: list[CronProcess] = []
    base = {k: v for k, v in os.environ.items() if not k.startswith("ACOUSTID_")}

    def start(*args: str, **environ: Any) -> CronProcess:
        log = tmp_path / f"cron-{len(started)}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from acoustid_stack.cli import main; main()",
                    "run",
                    "cron",
                    *args,
                ],
                env={**base, **test_environ, **environ},
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        started.append(CronProcess(process, log))
        return started[-1]

    yield start
    for cron in started:
        if cron.process.poll() is None:
            cron.process.send_signal(signal.SIGTERM)
    for cron in started:
        try:
            cron.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            cron.process.kill()
            cron.process.wait()
