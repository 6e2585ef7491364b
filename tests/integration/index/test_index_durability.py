"""Search correctness, crash recovery and snapshot → restore against real servers."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from index_servers import INDEX, IndexServer

pytestmark = pytest.mark.integration


def random_documents(count: int, seed: int, *, vocabulary: int = 5000) -> dict[int, list[int]]:
    """Documents over a small vocabulary, so that many of them share terms."""
    rng = np.random.default_rng(seed)
    return {
        doc_id: sorted(
            rng.choice(vocabulary, size=int(rng.integers(5, 60)), replace=False).tolist()
        )
        for doc_id in (rng.choice(2**32 - 1, size=count, replace=False) + 1).tolist()
    }


def brute_force(docs: dict[int, list[int]], query: list[int], min_score: int) -> dict[int, int]:
    wanted = set(query)
    scores = {doc_id: len(wanted.intersection(terms)) for doc_id, terms in docs.items()}
    return {doc_id: s for doc_id, s in scores.items() if s >= min_score}


def insert(server: IndexServer, docs: dict[int, list[int]]) -> int:
    changes = [{"insert": {"id": i, "hashes": h}} for i, h in docs.items()]
    status, reply = server.call("POST", f"/{INDEX}/_update", {"changes": changes})
    assert status == 200, reply
    return int(reply["version"])


def search(server: IndexServer, query: list[int], **options: int) -> dict[int, int]:
    status, reply = server.call("POST", f"/{INDEX}/_search", {"query": query, **options})
    assert status == 200, reply
    return {r["id"]: r["score"] for r in reply["results"]}


def test_search_finds_the_same_ids_and_scores_as_brute_force(server: IndexServer) -> None:
    docs = random_documents(3000, seed=1)
    items = list(docs.items())
    for start in range(0, len(items), 500):
        insert(server, dict(items[start : start + 500]))
    # replace some documents and delete others, so tombstones take part
    rng = np.random.default_rng(2)
    replaced = {i: sorted(rng.choice(5000, 30, replace=False).tolist()) for i, _ in items[:200]}
    docs.update(replaced)
    insert(server, replaced)
    deleted = [i for i, _ in items[200:400]]
    server.call("POST", f"/{INDEX}/_update", {"changes": [{"delete": {"id": i}} for i in deleted]})
    for i in deleted:
        docs.pop(i)
    for query_seed in range(25):
        query = random_documents(1, seed=100 + query_seed)
        terms = next(iter(query.values()))
        expected = brute_force(docs, terms, min_score=2)
        got = search(server, terms, limit=100, min_score=2, score_pct=0)
        best = sorted(expected.items(), key=lambda kv: (-kv[1], kv[0]))[:100]
        assert sorted(got.items(), key=lambda kv: (-kv[1], kv[0])) == best


def test_kill_9_during_acknowledged_updates_loses_nothing(server: IndexServer) -> None:
    acknowledged: list[tuple[int, list[int]]] = []
    attempted: list[tuple[int, list[int]]] = []
    stop = threading.Event()

    def writer() -> None:
        rng = np.random.default_rng(7)
        doc_id = 1
        while not stop.is_set():
            batch = [(doc_id + k, rng.integers(0, 2**32, 20).tolist()) for k in range(50)]
            doc_id += 50
            attempted.extend(batch)
            try:
                status, _ = server.call(
                    "POST",
                    f"/{INDEX}/_update",
                    {"changes": [{"insert": {"id": i, "hashes": h}} for i, h in batch]},
                )
            except OSError:
                return
            if status != 200:
                return
            acknowledged.extend(batch)

    thread = threading.Thread(target=writer)
    thread.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 3000 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()
    stop.set()
    thread.join(30)
    assert len(acknowledged) >= 3000
    server.start()
    for doc_id, hashes in acknowledged:
        assert search(server, hashes, limit=1) == {doc_id: 20}
    # the batch in flight at the kill is either wholly there or wholly absent
    in_flight = attempted[len(acknowledged) :][:50]
    present = [search(server, h, limit=1) == {i: 20} for i, h in in_flight]
    assert all(present) or not any(present)


def test_snapshot_restored_with_the_cli_gives_identical_search_results(
    start_server: Callable[..., IndexServer], tmp_path: Path
) -> None:
    source = start_server()
    docs = random_documents(2000, seed=3)
    insert(source, docs)
    source.call("POST", f"/{INDEX}/_update", {"changes": [{"delete": {"id": next(iter(docs))}}]})
    queries = [next(iter(random_documents(1, seed=200 + k).values())) for k in range(20)]
    before = [search(source, q, limit=100) for q in queries]

    archive = tmp_path / "fingerprints.tar"
    with archive.open("wb") as f:
        subprocess.run(
            ["curl", "-sf", f"{source.url}/{INDEX}/_snapshot"], stdout=f, check=True, timeout=60
        )
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
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "restored index" in result.stdout
    restored = start_server(restored_dir)
    assert [search(restored, q, limit=100) for q in queries] == before
    assert restored.call("GET", f"/{INDEX}")[1]["stats"]["num_docs"] == len(docs) - 1


def test_restore_refuses_a_damaged_snapshot_with_one_line(tmp_path: Path) -> None:
    archive = tmp_path / "broken.tar"
    archive.write_bytes(b"not a tar at all" * 100)
    result = subprocess.run(
        [
            shutil.which("acoustid-stack") or "acoustid-stack",
            "index",
            "restore",
            str(archive),
            "--dir",
            str(tmp_path / "d"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: the snapshot is not a readable tar stream")
    assert "Traceback" not in result.stderr
