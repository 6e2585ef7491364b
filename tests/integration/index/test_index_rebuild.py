"""`acoustid-stack index rebuild` fills an index from the fingerprint database."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import psycopg
import pytest
from index_servers import INDEX, IndexServer

from acoustid_stack.config import load_settings
from acoustid_stack.fingerprint.query import extract_query

pytestmark = pytest.mark.integration


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [shutil.which("acoustid-stack") or "acoustid-stack", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_rebuild_indexes_every_fingerprint_under_its_query_terms(
    server: IndexServer, test_environ: dict[str, str]
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ACOUSTID_CONFIG"}
    env.update(test_environ)
    env["ACOUSTID_DATABASE_FINGERPRINT_NAME"] = (
        test_environ["ACOUSTID_DATABASE_FINGERPRINT_NAME"] + "_rebuild"
    )
    env["ACOUSTID_INDEX_SHARDS"] = server.url
    env["ACOUSTID_INDEX_NAME"] = INDEX
    upgraded = run_cli("db", "upgrade", "fingerprint", env=env)
    assert upgraded.returncode == 0, upgraded.stderr

    rng = np.random.default_rng(5)
    fingerprints = [rng.integers(-(2**31), 2**31, 300, dtype=np.int64) for _ in range(30)]
    target = load_settings(environ=env).database.fingerprint
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        track = conn.execute("INSERT INTO track (gid) VALUES (gen_random_uuid()) RETURNING id")
        track_id = (track.fetchone() or [0])[0]
        ids = []
        for hashes in fingerprints:
            row = conn.execute(
                "INSERT INTO fingerprint (fingerprint, length, track_id) VALUES (%s, 120, %s) "
                "RETURNING id",
                (hashes.tolist(), track_id),
            ).fetchone()
            assert row is not None
            ids.append(row[0])

    rebuilt = run_cli("index", "rebuild", "--batch", "7", env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr

    for fingerprint_id, hashes in zip(ids, fingerprints, strict=True):
        query = extract_query(hashes.astype(np.int32)).view(np.uint32).tolist()
        status, reply = server.call("POST", f"/{INDEX}/_search", {"query": query, "limit": 1})
        assert status == 200
        assert reply["results"] == [{"id": fingerprint_id, "score": len(set(query))}]


def test_rebuild_names_the_database_it_cannot_reach(server: IndexServer) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ACOUSTID_CONFIG"}
    env["ACOUSTID_DATABASE_FINGERPRINT_PORT"] = "1"
    env["ACOUSTID_INDEX_SHARDS"] = server.url
    result = run_cli("index", "rebuild", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot read the fingerprint database at 127.0.0.1:1")
