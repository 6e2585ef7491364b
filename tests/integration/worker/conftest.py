"""Worker tests: migrated databases, a real index server, a stream of each test's own."""

from __future__ import annotations

import os
import secrets
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from nats.aio.client import Client
from numpy.typing import NDArray

from acoustid_stack.config import Settings
from acoustid_stack.db.migrate import upgrade
from acoustid_stack.db.schema import app as app_db
from acoustid_stack.index.client import ShardedIndexClient
from acoustid_stack.local.process import ManagedProcess, free_port
from acoustid_stack.local.servers import index_process, running
from acoustid_stack.submissions.connection import Reconnect, connect_nats
from acoustid_stack.submissions.databases import Databases, open_databases
from acoustid_stack.submissions.store import NewSubmission, insert_submissions
from acoustid_stack.submissions.stream import ensure_stream
from acoustid_stack.worker.importer import SubmissionImporter
from worker_support import IndexShard

CLI = [sys.executable, "-c", "from acoustid_stack.cli import main; main()"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def child_environ(environ: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ACOUSTID_")}
    return {**base, **environ}


@pytest.fixture(scope="session")
def index_url(
    test_environ: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real index server (`acoustid-stack run index`) for the worker tests."""
    data = tmp_path_factory.mktemp("index")
    made = index_process(
        data / "data", free_port(), log_path=data / "index.log", env=child_environ(test_environ)
    )
    with running(made) as url:
        yield url


@pytest.fixture
def index_shards(test_environ: dict[str, str], tmp_path: Path) -> Iterator[list[IndexShard]]:
    """Two real index servers of this test's own, started; a test may stop and start one
    again (same data folder). Stopped at teardown."""
    shards = [
        IndexShard(
            *index_process(
                tmp_path / f"index-{i}",
                free_port(),
                log_path=tmp_path / f"index-{i}.log",
                env=child_environ(test_environ),
            )
        )
        for i in (1, 2)
    ]
    try:
        for shard in shards:
            shard.start()
        yield shards
    finally:
        for shard in shards:
            shard.process.stop()


@pytest.fixture
def worker_environ(test_environ: dict[str, str], index_url: str) -> dict[str, str]:
    """The session's environment with the index server and a stream of this test's own.

    Its subjects must not overlap the session stream's (`<prefix>.>`): JetStream refuses
    overlapping streams.
    """
    suffix = secrets.token_hex(3)
    return {
        **test_environ,
        "ACOUSTID_INDEX_SHARDS": index_url,
        "ACOUSTID_NATS_STREAM": f"{test_environ['ACOUSTID_NATS_STREAM']}_{suffix.upper()}",
        "ACOUSTID_NATS_SUBJECT_PREFIX": f"{test_environ['ACOUSTID_NATS_SUBJECT_PREFIX']}_{suffix}",
    }


@pytest.fixture(scope="session")
def migrated(test_settings: Settings) -> None:
    list(upgrade(test_settings.database))


@pytest.fixture
def settings(worker_environ: dict[str, str], migrated: None) -> Settings:
    from acoustid_stack.config import load_settings

    return load_settings(path=None, environ=worker_environ)


@pytest.fixture
async def databases(settings: Settings) -> AsyncIterator[Databases]:
    dbs = open_databases(settings.database, pool_size=8)
    yield dbs
    await dbs.dispose()


@pytest.fixture
async def index(settings: Settings) -> AsyncIterator[ShardedIndexClient]:
    client = ShardedIndexClient.from_settings(settings)
    await client.ensure_index()
    yield client
    await client.close()


@pytest.fixture
def importer(databases: Databases, index: ShardedIndexClient) -> SubmissionImporter:
    return SubmissionImporter(databases=databases, index=index)


@pytest.fixture
async def nc(settings: Settings) -> AsyncIterator[Client]:
    client = await connect_nats(settings.nats, reconnect=Reconnect.FAIL_FAST)
    await ensure_stream(client.jetstream(), settings.nats)
    yield client
    await client.jetstream().delete_stream(settings.nats.stream)
    await client.close()


Hashes = NDArray[np.int32]


@pytest.fixture
def make_hashes() -> Callable[..., Hashes]:
    """Random fingerprints (unrelated to each other), and noisy copies of them.

    `noise` flips each of the 4 low bits with that probability: the index terms (top 28
    bits) stay equal while compare2 drops to about 1 − noise/4 (0.25 → 0.94, 0.8 → 0.80).
    """
    rng = np.random.default_rng()

    def make(size: int = 600, *, like: Hashes | None = None, noise: float = 0.0) -> Hashes:
        if like is None:
            return rng.integers(-(2**31), 2**31, size, dtype=np.int64).astype(np.int32)
        flips = np.zeros(like.size, dtype=np.uint32)
        for bit in range(4):
            flips |= (rng.random(like.size) < noise).astype(np.uint32) << np.uint32(bit)
        return (like.view(np.uint32) ^ flips).view(np.int32)

    return make


@pytest.fixture
async def client_ids(databases: Databases) -> tuple[int, int]:
    """(account_id, application_id) of a real account and application to submit as."""
    async with databases.app.begin() as conn:
        account_id = await conn.scalar(
            app_db.account.insert()
            .values(name="worker tests", apikey=secrets.token_hex(10))
            .returning(app_db.account.c.id)
        )
        application_id = await conn.scalar(
            app_db.application.insert()
            .values(
                name="worker tests",
                version="1",
                apikey=secrets.token_hex(10),
                account_id=account_id,
            )
            .returning(app_db.application.c.id)
        )
    return int(account_id), int(application_id)


Submit = Callable[..., Awaitable[list[int]]]


@pytest.fixture
def submit(databases: Databases, client_ids: tuple[int, int]) -> Submit:
    """Insert one pending submission per fingerprint (committed) and return their ids.

    Keyword fields (mbid, meta, length, …) apply to every one; by default each links its
    own new MBID.
    """

    async def insert(*fingerprints: Hashes, **fields: Any) -> list[int]:
        account_id, application_id = client_ids
        fields.setdefault("length", 120)
        items = [
            NewSubmission(
                account_id=account_id,
                application_id=application_id,
                fingerprint=hashes.tolist(),
                **{"mbid": uuid.uuid4(), **fields},
            )
            for hashes in fingerprints
        ]
        async with databases.ingest.begin() as conn:
            return await insert_submissions(conn, items)

    return insert


@pytest.fixture
def start_worker(
    worker_environ: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., ManagedProcess]]:
    """Start `acoustid-stack run worker` processes; killed at teardown if still running."""
    started: list[ManagedProcess] = []

    def start(*args: str, **environ: str) -> ManagedProcess:
        process = ManagedProcess(
            name=f"worker-{len(started)}",
            argv=[*CLI, "run", "worker", *args],
            log_path=tmp_path / f"worker-{len(started)}.log",
            ready=lambda: True,
            env=child_environ({**worker_environ, **environ}),
        )
        process.start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
