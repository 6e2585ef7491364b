"""Periodic index snapshots against real index servers: taken by a real cron leader, restored
with `acoustid-stack index restore`, pruned, and kept when a shard is down."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from acoustid_stack.cron.metrics import CronMetrics
from acoustid_stack.cron.snapshots import IndexSnapshots, shard_folder, snapshots
from acoustid_stack.index.client import ShardedIndexClient
from acoustid_stack.index.interfaces import Delete, Insert, SearchHit, SearchOptions
from acoustid_stack.local.process import free_port
from acoustid_stack.local.servers import index_process, running
from acoustid_stack.ops.layout import stamp
from api_support import ACOUSTID_STACK

pytestmark = pytest.mark.integration

INDEX = "fingerprints"
CHILD_ENV = {k: v for k, v in os.environ.items() if not k.startswith("ACOUSTID_")}
T0 = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)


@contextlib.contextmanager
def index_servers(root: Path, count: int) -> Iterator[list[str]]:
    """`count` real index servers, each with its own data folder under `root`."""
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(
                running(
                    index_process(
                        root / f"shard-{i}",
                        free_port(),
                        log_path=root / f"shard-{i}.log",
                        env=CHILD_ENV,
                    ),
                    timeout=60,
                )
            )
            for i in range(count)
        ]


@pytest.fixture
def shards(tmp_path: Path) -> Iterator[list[str]]:
    with index_servers(tmp_path / "index", 2) as urls:
        yield urls


def documents(count: int, seed: int) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {i: rng.integers(0, 2**32, 40, dtype=np.uint32) for i in range(1, count + 1)}


async def _fill(shards: list[str], docs: dict[int, np.ndarray], deleted: list[int]) -> None:
    client = ShardedIndexClient(shards=shards, index=INDEX, timeout=30)
    try:
        await client.update([Insert(i, h) for i, h in docs.items()])
        await client.update([Delete(i) for i in deleted])
    finally:
        await client.close()


async def _search(shard: str, queries: list[np.ndarray]) -> list[list[SearchHit]]:
    client = ShardedIndexClient(shards=[shard], index=INDEX, timeout=30)
    try:
        return [await client.search(q.tolist(), SearchOptions(limit=100)) for q in queries]
    finally:
        await client.close()


def wait_for_log(cron: Any, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in cron.output():
        assert cron.process.poll() is None, cron.output()
        assert time.monotonic() < deadline, f"no {text!r} in the cron log:\n{cron.output()}"
        time.sleep(0.2)


def restore(snapshot: Path, data_dir: Path) -> str:
    result = subprocess.run(
        [*ACOUSTID_STACK, "index", "restore", str(snapshot), "--dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
def test_the_cron_leader_snapshots_every_shard_and_a_restored_snapshot_answers_alike(
    start_cron: Callable[..., Any], shards: list[str], tmp_path: Path
) -> None:
    docs = documents(600, seed=7)
    deleted = list(docs)[:25]
    asyncio.run(_fill(shards, docs, deleted))
    queries = [docs[i] for i in list(docs)[:80]]  # 25 deleted, 55 live, on either shard
    before = {shard: asyncio.run(_search(shard, queries)) for shard in shards}
    assert all(any(hits) for hits in before.values())  # both shards hold documents

    snapshot_dir = tmp_path / "snapshots"
    cron = start_cron(
        "--retry-interval",
        "0.3",
        ACOUSTID_INDEX_SHARDS=",".join(shards),
        ACOUSTID_INDEX_SNAPSHOT_DIR=str(snapshot_dir),
    )
    wait_for_log(cron, "cron job index_snapshots done: 2 taken, 0 fresh, 0 failed")
    assert "Traceback" not in cron.output()

    for position, shard in enumerate(shards):
        [(taken, archive)] = snapshots(snapshot_dir / shard_folder(shard))
        assert abs(datetime.now(UTC) - taken) < timedelta(minutes=5)
        assert f"taking an index snapshot of {shard} into {archive}" in cron.output()
        assert not list(archive.parent.glob(".*"))  # no partial copy left behind
        restored_dir = tmp_path / f"restored-{position}"
        assert "restored index 'fingerprints'" in restore(archive, restored_dir)
        with running(
            index_process(
                restored_dir,
                free_port(),
                log_path=tmp_path / f"restored-{position}.log",
                env=CHILD_ENV,
            ),
            timeout=60,
        ) as restored:
            assert asyncio.run(_search(restored, queries)) == before[shard]


@pytest.mark.anyio
async def test_each_shard_keeps_its_newest_snapshots_and_a_fresh_one_is_not_copied_again(
    shards: list[str], tmp_path: Path
) -> None:
    await _fill(shards, documents(100, seed=8), [])
    registry = CollectorRegistry()
    job = IndexSnapshots(
        shards=shards,
        index=INDEX,
        directory=tmp_path / "snapshots",
        interval=timedelta(hours=1),
        keep=2,
        metrics=CronMetrics(registry),
    )
    runs = [await job.take(T0 + timedelta(minutes=m)) for m in (0, 30, 60, 120, 180)]

    assert [(len(r.taken), len(r.fresh), len(r.failed)) for r in runs] == [
        (2, 0, 0),
        (0, 2, 0),
        (2, 0, 0),
        (2, 0, 0),
        (2, 0, 0),
    ]
    for shard in shards:
        folder = tmp_path / "snapshots" / shard_folder(shard)
        assert sorted(p.name for p in folder.iterdir()) == [
            f"{stamp(T0 + timedelta(minutes=120))}.tar",
            f"{stamp(T0 + timedelta(minutes=180))}.tar",
        ]
        newest = (T0 + timedelta(minutes=180)).timestamp()
        labels = {"shard": shard}
        assert (
            registry.get_sample_value("cron_index_snapshot_last_success_timestamp_seconds", labels)
            == newest
        )
        size = registry.get_sample_value("cron_index_snapshot_bytes", labels)
        assert size == (folder / f"{stamp(T0 + timedelta(minutes=180))}.tar").stat().st_size


def test_a_shard_that_is_down_is_logged_as_an_error_and_its_older_snapshots_are_kept(
    start_cron: Callable[..., Any], shards: list[str], tmp_path: Path
) -> None:
    live = shards[0]
    down = f"http://127.0.0.1:{free_port()}"
    snapshot_dir = tmp_path / "snapshots"
    older = snapshot_dir / shard_folder(down)
    older.mkdir(parents=True)
    kept = [older / f"{stamp(T0 - timedelta(days=d))}.tar" for d in (3, 2, 1)]
    for path in kept:
        path.write_bytes(b"an older snapshot")

    cron = start_cron(
        "--retry-interval",
        "0.3",
        "--metrics-port",
        str(metrics_port := free_port()),
        ACOUSTID_INDEX_SHARDS=f"{live},{down}",
        ACOUSTID_INDEX_SNAPSHOT_DIR=str(snapshot_dir),
        ACOUSTID_INDEX_SNAPSHOT_KEEP="1",
    )
    wait_for_log(cron, "cron job index_snapshots failed: 1 taken, 0 fresh, 1 failed")
    output = cron.output()
    assert (
        f"no new index snapshot of {down}, its older snapshots are kept: "
        f"snapshot of {down}/{INDEX}/_snapshot failed: " in output
    )
    assert "Traceback" not in output
    assert sorted(older.iterdir()) == kept
    assert len(snapshots(snapshot_dir / shard_folder(live))) == 1
    wait_for_metrics(
        metrics_port,
        f'cron_index_snapshot_failures_total{{shard="{down}"}} 1.0',
        'cron_job_runs_total{job="index_snapshots",result="error"} 1.0',
    )


def wait_for_metrics(port: int, *lines: str, timeout: float = 30) -> None:
    """The cron process's /metrics shows every line (counted just after the log line)."""
    deadline = time.monotonic() + timeout
    while True:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        if all(line in text for line in lines):
            return
        assert time.monotonic() < deadline, text
        time.sleep(0.2)
