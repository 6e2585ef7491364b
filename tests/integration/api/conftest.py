"""Fixtures for api tests: migrated databases, a real index server, keys, and the app."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest
from starlette.testclient import TestClient

from acoustid_stack.api.app import create_app
from acoustid_stack.api.auth import new_api_key
from acoustid_stack.api.metrics import ApiMetrics
from acoustid_stack.config import Settings, load_settings
from acoustid_stack.db import migrate
from acoustid_stack.fingerprint import extract_query
from acoustid_stack.index.client import ShardedIndexClient
from acoustid_stack.local.process import ManagedProcess, free_port

INDEX_NAME = "fingerprints"
# the CLI of this checkout, whatever is on PATH
ACOUSTID_STACK = [sys.executable, "-c", "from acoustid_stack.cli import main; main()"]


@pytest.fixture(scope="session")
def migrated(test_settings: Settings) -> Settings:
    for _ in migrate.upgrade(test_settings.database):
        pass
    return test_settings


@pytest.fixture(scope="session")
def index_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `acoustid-stack run index` process; yields its base URL."""
    port = free_port()
    work = tmp_path_factory.mktemp("index")
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/_health", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    process = ManagedProcess(
        name="index",
        argv=[
            *ACOUSTID_STACK,
            "run",
            "index",
            "--dir",
            str(work / "data"),
            "--port",
            str(port),
            "--create",
            INDEX_NAME,
        ],
        log_path=work / "index.log",
        ready=ready,
    )
    process.start()
    try:
        process.wait_ready(timeout=30)
        yield url
    finally:
        process.stop()


@pytest.fixture(scope="session")
def api_environ(
    test_environ: dict[str, str],
    index_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    shutdown_file = tmp_path_factory.mktemp("api") / "shutdown"
    return {
        **test_environ,
        "ACOUSTID_INDEX_SHARDS": index_server,
        "ACOUSTID_INDEX_NAME": INDEX_NAME,
        "ACOUSTID_WEBSITE_SHUTDOWN_FILE": str(shutdown_file),
        # generous limits: rate limiting has its own tests with their own settings
        "ACOUSTID_RATE_LIMIT_GLOBAL": "100000",
        "ACOUSTID_RATE_LIMIT_IP": "100000",
        "ACOUSTID_RATE_LIMIT_APPLICATION": "100000",
    }


@pytest.fixture(scope="session")
def api_settings(migrated: Settings, api_environ: dict[str, str]) -> Settings:
    return load_settings(path=None, environ=api_environ)


def make_client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings, metrics=ApiMetrics()), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(api_settings: Settings) -> Iterator[TestClient]:
    with make_client(api_settings) as test_client:
        yield test_client


class Keys:
    """An application key and a user key in the test app database."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.conninfo = settings.database.app.conninfo()
        self.user_key = new_api_key()
        self.client_key = new_api_key()
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            self.account_id = conn.execute(
                "INSERT INTO account (name, apikey) VALUES ('tester', %s) RETURNING id",
                (self.user_key,),
            ).fetchone()[0]  # type: ignore[index]
            self.application_id = conn.execute(
                "INSERT INTO application (name, version, apikey, account_id) "
                "VALUES ('test app', '1.0', %s, %s) RETURNING id",
                (self.client_key, self.account_id),
            ).fetchone()[0]  # type: ignore[index]


@pytest.fixture(scope="session")
def keys(api_settings: Settings) -> Keys:
    return Keys(api_settings)


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
        meta: dict[str, Any] | None = None,
        track_gid: uuid.UUID | None = None,
    ) -> tuple[int, uuid.UUID]:
        """(fingerprint id, track gid) of a new track holding this fingerprint."""
        gid = track_gid or uuid.uuid4()
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            track_id = conn.execute(
                "INSERT INTO track (gid) VALUES (%s) RETURNING id", (gid,)
            ).fetchone()[0]  # type: ignore[index]
            fingerprint_id = conn.execute(
                "INSERT INTO fingerprint (fingerprint, length, track_id) VALUES (%s, %s, %s) "
                "RETURNING id",
                (hashes.astype(np.int32).tolist(), length, track_id),
            ).fetchone()[0]  # type: ignore[index]
            for mbid in mbids:
                conn.execute(
                    "INSERT INTO track_mbid (track_id, mbid) VALUES (%s, %s)", (track_id, mbid)
                )
            if meta:
                meta_id = conn.execute(
                    "INSERT INTO meta (track, artist, album, album_artist) "
                    "VALUES (%(track)s, %(artist)s, %(album)s, %(album_artist)s) RETURNING id",
                    {"album_artist": None, "album": None, **meta},
                ).fetchone()[0]  # type: ignore[index]
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


@pytest.fixture(scope="session")
def catalog(api_settings: Settings, index_server: str) -> Catalog:
    return Catalog(api_settings, index_server)


def random_hashes(seed: int, size: int = 600) -> np.ndarray:
    """A fingerprint-like array of distinct random 32-bit values."""
    return np.random.default_rng(seed).integers(0, 2**32, size, dtype=np.uint64).astype(np.uint32)
