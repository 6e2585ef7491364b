"""Real index servers on loopback: `acoustid-stack run index` subprocesses.

Each server gets its own data directory and free port; every server a test starts is
stopped in teardown (SIGTERM, then SIGKILL), also when the test fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from index_servers import IndexServer


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., IndexServer]]:
    """Factory: start_server(data_dir=None, health=b"OK\n") -> a running IndexServer."""
    servers: list[IndexServer] = []

    def start(data_dir: Path | None = None, health: bytes = b"OK\n") -> IndexServer:
        directory = data_dir or tmp_path / f"data-{len(servers)}"
        server = IndexServer(directory, tmp_path / "logs")
        servers.append(server)
        return server.start(health)

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def server(start_server: Callable[..., IndexServer]) -> IndexServer:
    return start_server()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    """One server for a module's tests that each leave it as they found it."""
    root = tmp_path_factory.mktemp("shared-index")
    server = IndexServer(root / "data", root / "logs")
    try:
        yield server.start()
    finally:
        server.stop()
