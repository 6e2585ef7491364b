"""Serving under load (issue 15): searches run off the event loop, SIGTERM under load ends
the server promptly and quietly, a snapshot of a large index completes while writes go on.

Upstream fpindex as built from its source hangs on `_snapshot` and spins on SIGTERM
writing millions of log lines (index/README.md); these tests keep ours from doing either.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from index_servers import INDEX, IndexServer, http_json

from acoustid_stack.index.server import create_app
from acoustid_stack.index.store import IndexStore
from acoustid_stack.local.process import free_port

pytestmark = pytest.mark.integration


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition`; the limit only keeps a broken server from hanging the run."""
    give_up = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < give_up, f"waited 60 s for {what}"
        time.sleep(0.05)


@contextlib.contextmanager
def in_process_server(data_dir: Path, *, search_threads: int) -> Iterator[tuple[str, Any]]:
    """The index app served by uvicorn on a thread of this process: its URL and the app."""
    app = create_app(data_dir, create=[INDEX], search_threads=search_threads)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: server.started, "uvicorn to start")
        wait_for(lambda: http_json("GET", f"{url}/_health")[0] == 200, "the index to load")
        yield url, app
    finally:
        server.should_exit = True
        thread.join(60)


def test_health_and_writes_answer_while_every_search_thread_is_busy(tmp_path: Path) -> None:
    """Two searches hold both search threads (their store search waits on an Event inside
    the real request path) and a third waits for one: /_health, metrics, an update and the
    index info still answer. Searches used to run on the event loop and stall them all."""
    with in_process_server(tmp_path / "data", search_threads=2) as (url, app):
        assert http_json("POST", f"{url}/{INDEX}/_update", {"changes": [ins(1, [1, 2, 3])]})[0]
        store: IndexStore = app.state.registry.get(INDEX)
        search = store.search
        entered = threading.Semaphore(0)
        release = threading.Event()

        def held_search(*args: Any, **kwargs: Any) -> Any:
            entered.release()
            release.wait(60)
            return search(*args, **kwargs)

        store.search = held_search  # type: ignore[method-assign]
        replies: list[tuple[int, Any]] = []

        def client() -> None:
            body = {"query": [1, 2, 3], "timeout": 10000}
            replies.append(http_json("POST", f"{url}/{INDEX}/_search", body))

        clients = [threading.Thread(target=client) for _ in range(3)]
        try:
            for thread in clients:
                thread.start()
            assert entered.acquire(timeout=30)
            assert entered.acquire(timeout=30)

            assert http_json("GET", f"{url}/_health") == (200, b"OK\n")
            assert http_json("GET", f"{url}/_metrics")[0] == 200
            status, reply = http_json(
                "POST", f"{url}/{INDEX}/_update", {"changes": [ins(2, [1, 2])]}
            )
            assert (status, reply) == (200, {"version": 2})
            assert http_json("GET", f"{url}/{INDEX}")[1]["stats"]["num_docs"] == 2
            assert replies == []  # every search is still held
        finally:
            release.set()
            for thread in clients:
                thread.join(60)
        assert replies == [(200, {"results": [{"id": 1, "score": 3}, {"id": 2, "score": 2}]})] * 3


def ins(doc_id: int, hashes: list[int]) -> dict[str, Any]:
    return {"insert": {"id": doc_id, "hashes": hashes}}


def load(server: IndexServer, documents: int, *, batch: int = 5000) -> None:
    rng = np.random.default_rng(11)
    for first in range(1, documents + 1, batch):
        terms = rng.integers(0, 2**32, (batch, 50), dtype=np.uint32).tolist()
        changes = [ins(first + k, hashes) for k, hashes in enumerate(terms)]
        assert server.call("POST", f"/{INDEX}/_update", {"changes": changes})[0] == 200


@contextlib.contextmanager
def traffic(server: IndexServer, clients: int) -> Iterator[list[int]]:
    """`clients` threads searching and updating until the block ends (or the server is
    gone); yields the list of statuses they got."""
    stop = threading.Event()
    statuses: list[int] = []

    def client(seed: int) -> None:
        rng = np.random.default_rng(seed)
        while not stop.is_set():
            hashes = rng.integers(0, 2**32, 50).tolist()
            try:
                statuses.append(
                    http_json("POST", f"{server.url}/{INDEX}/_search", {"query": hashes})[0]
                )
                doc = int(rng.integers(1, 2**32 - 1))
                body = {"changes": [ins(doc, hashes)]}
                statuses.append(http_json("POST", f"{server.url}/{INDEX}/_update", body)[0])
            except OSError:
                return  # the server is gone

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield statuses
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)


def test_sigterm_under_load_exits_within_seconds_with_a_bounded_log(
    start_server: Callable[..., IndexServer],
) -> None:
    server = start_server()
    load(server, 20_000)
    log_path = server.process.log_path
    with traffic(server, clients=6) as statuses:
        wait_for(lambda: len(statuses) >= 60, "60 requests")
        assert set(statuses) == {200}
        lines_before = len(log_path.read_bytes().splitlines())
        pid = server.process.pid
        assert pid is not None
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while server.process.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not server.process.running(), "still running 30 s after SIGTERM"
    added = len(log_path.read_bytes().splitlines()) - lines_before
    assert added < 200, server.process.log_tail(50)
    assert "Traceback" not in server.process.log_tail(200)


def test_snapshot_of_a_large_index_while_writes_continue_restores_and_serves(
    start_server: Callable[..., IndexServer], tmp_path: Path
) -> None:
    documents = 50_000
    source = start_server()
    load(source, documents)
    archive = tmp_path / "fingerprints.tar"
    with traffic(source, clients=2) as statuses:
        with archive.open("wb") as out:
            subprocess.run(
                ["curl", "-sf", f"{source.url}/{INDEX}/_snapshot"],
                stdout=out,
                check=True,
                timeout=120,
            )
        written = len(statuses)
        # writes go on after the snapshot too
        wait_for(lambda: len(statuses) >= written + 10, "10 more requests")
    assert set(statuses) == {200}
    restored_dir = tmp_path / "restored"
    result = subprocess.run(
        [
            shutil.which("acoustid-stack") or "acoustid-stack",
            "index",
            "restore",
            str(archive),
            "--dir",
            str(restored_dir),
            "--name",
            INDEX,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    restored = start_server(restored_dir)
    num_docs = restored.call("GET", f"/{INDEX}")[1]["stats"]["num_docs"]
    assert documents <= num_docs < source.call("GET", f"/{INDEX}")[1]["stats"]["num_docs"]
    rng = np.random.default_rng(11)
    first = rng.integers(0, 2**32, (5000, 50), dtype=np.uint32).tolist()
    for doc_id in (1, 2, 5000):
        status, reply = restored.call("POST", f"/{INDEX}/_search", {"query": first[doc_id - 1]})
        assert (status, reply["results"][0]) == (200, {"id": doc_id, "score": 50})
