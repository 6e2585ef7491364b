"""Helpers shared by the api integration tests and the end-to-end tests: real processes
(index server, api server), keys and catalog rows written straight into the test databases.

Importable from any test because the root conftest puts `tests/` on sys.path.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from acoustid_stack.api.auth import new_api_key
from acoustid_stack.config import Settings
from acoustid_stack.fingerprint import extract_query
from acoustid_stack.index.client import ShardedIndexClient
from acoustid_stack.local.process import ManagedProcess, free_port
from acoustid_stack.local.servers import http_ok, index_process, running

INDEX_NAME = "fingerprints"
# the CLI of this checkout, whatever is on PATH
ACOUSTID_STACK = [sys.executable, "-c", "from acoustid_stack.cli import main; main()"]


@contextmanager
def index_server(work: Path) -> Iterator[str]:
    """A real `acoustid-stack run index` process; yields its base URL."""
    made = index_process(
        work / "data", free_port(), log_path=work / "index.log", create=(INDEX_NAME,)
    )
    with running(made) as url:
        yield url


@contextmanager
def api_server(
    work: Path, environ: Mapping[str, str], *, workers: int = 2
) -> Iterator[tuple[str, ManagedProcess]]:
    """A real `acoustid-stack run api` (uvicorn) process; yields its base URL and process."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = ManagedProcess(
        name="api",
        argv=[*ACOUSTID_STACK, "run", "api", "--port", str(port), "--workers", str(workers)],
        log_path=work / "api.log",
        ready=lambda: http_ok(f"{url}/_health_docker"),
        env={**os.environ, **environ},
        stop_signal=signal.SIGTERM,
    )
    with running((process, url), timeout=60):
        yield url, process


def api_environ(
    test_environ: Mapping[str, str], index_url: str, shutdown_file: Path
) -> dict[str, str]:
    """ACOUSTID_* for an api on this test session's resources, with limits out of the way and
    a stream of its own (no worker of another test consumes what the api tests publish)."""
    return {
        **test_environ,
        "ACOUSTID_NATS_STREAM": test_environ["ACOUSTID_NATS_STREAM"] + "_API",
        "ACOUSTID_NATS_SUBJECT_PREFIX": test_environ["ACOUSTID_NATS_SUBJECT_PREFIX"] + "_api",
        "ACOUSTID_INDEX_SHARDS": index_url,
        "ACOUSTID_INDEX_NAME": INDEX_NAME,
        "ACOUSTID_WEBSITE_SHUTDOWN_FILE": str(shutdown_file),
        # the tests play the reverse proxy: their X-Forwarded-For names the client
        "ACOUSTID_API_TRUSTED_PROXIES": "127.0.0.1",
        # rate limiting has its own tests with their own settings
        "ACOUSTID_RATE_LIMIT_GLOBAL": "100000",
        "ACOUSTID_RATE_LIMIT_IP": "100000",
        "ACOUSTID_RATE_LIMIT_APPLICATION": "100000",
    }


class Keys:
    """An application key and a user key in the test app database."""

    def __init__(self, settings: Settings) -> None:
        self.conninfo = settings.database.app.conninfo()
        self.user_key = new_api_key()
        self.client_key = new_api_key()
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            self.account_id = _one(
                conn,
                "INSERT INTO account (name, apikey) VALUES ('tester', %s) RETURNING id",
                (self.user_key,),
            )
            self.application_id = _one(
                conn,
                "INSERT INTO application (name, version, apikey, account_id) "
                "VALUES ('test app', '1.0', %s, %s) RETURNING id",
                (self.client_key, self.account_id),
            )


class Catalog:
    """Writes tracks and fingerprints straight into the test fingerprint DB and the index."""

    def __init__(self, settings: Settings, index_url: str) -> None:
        self.conninfo = settings.database.fingerprint.conninfo()
        self.index_url = index_url

    def add(
        self,
        hashes: np.ndarray,
        length: int,
        *,
        mbids: tuple[uuid.UUID, ...] = (),
        disabled_mbids: tuple[uuid.UUID, ...] = (),
        meta: dict[str, Any] | None = None,
    ) -> tuple[int, uuid.UUID]:
        """(fingerprint id, track gid) of a new track holding this fingerprint."""
        gid = uuid.uuid4()
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            track_id = _one(conn, "INSERT INTO track (gid) VALUES (%s) RETURNING id", (gid,))
            fingerprint_id = _one(
                conn,
                "INSERT INTO fingerprint (fingerprint, length, track_id) VALUES (%s, %s, %s) "
                "RETURNING id",
                (hashes.astype(np.int32).tolist(), length, track_id),
            )
            for mbid in mbids + disabled_mbids:
                conn.execute(
                    "INSERT INTO track_mbid (track_id, mbid, submission_count, disabled) "
                    "VALUES (%s, %s, 3, %s)",
                    (track_id, mbid, mbid in disabled_mbids),
                )
            if meta:
                meta_id = _one(
                    conn,
                    "INSERT INTO meta (track, artist, album, album_artist) "
                    "VALUES (%(track)s, %(artist)s, %(album)s, %(album_artist)s) RETURNING id",
                    {"track": None, "artist": None, "album": None, "album_artist": None, **meta},
                )
                conn.execute(
                    "INSERT INTO track_meta (track_id, meta_id) VALUES (%s, %s)",
                    (track_id, meta_id),
                )
        asyncio.run(self._index(fingerprint_id, hashes))
        return fingerprint_id, gid

    async def _index(self, fingerprint_id: int, hashes: np.ndarray) -> None:
        index = ShardedIndexClient(shards=[self.index_url], index=INDEX_NAME)
        try:
            await index.insert(fingerprint_id, extract_query(hashes).view(np.uint32).tolist())
        finally:
            await index.close()


def random_hashes(seed: int, size: int = 600) -> np.ndarray:
    """A fingerprint-like array of random 32-bit values."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2**32, size, dtype=np.uint64).astype(np.uint32)


def _one(conn: psycopg.Connection[Any], query: str, params: Any) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]
