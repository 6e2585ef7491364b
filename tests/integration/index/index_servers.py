"""Helpers of the index integration tests: a real `acoustid-stack run index` subprocess."""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from acoustid_stack.local.process import ManagedProcess, free_port

INDEX = "fingerprints"


def http_json(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        raw = error.read()
        status = error.code
    return status, json.loads(raw) if raw and raw[:1] in b"{[" else raw


class IndexServer:
    def __init__(self, data_dir: Path, log_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.health = b"OK\n"
        exe = shutil.which("acoustid-stack")
        assert exe is not None, "acoustid-stack is not installed"
        self.process = ManagedProcess(
            name=f"index:{self.port}",
            argv=[
                exe,
                "run",
                "index",
                "--dir",
                str(data_dir),
                "--port",
                str(self.port),
                "--create",
                INDEX,
            ],
            log_path=log_dir / f"index-{self.port}.log",
            ready=self._ready,
            env={k: v for k, v in os.environ.items() if k != "ACOUSTID_CONFIG"},
        )

    def _ready(self) -> bool:
        try:
            return http_json("GET", f"{self.url}/{INDEX}/_health")[1] == self.health
        except OSError:
            return False

    def start(self, health: bytes = b"OK\n") -> IndexServer:
        """Start and wait until the index answers `health` (b"CORRUPT\n" for a damaged one)."""
        self.health = health
        self.process.start()
        self.process.wait_ready(60)
        return self

    def kill(self) -> None:
        self.process.kill()

    def stop(self) -> None:
        self.process.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return http_json(method, f"{self.url}{path}", body)
