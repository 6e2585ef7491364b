"""Behaviour the fingerprint database's migration adds beyond plain tables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from click.testing import Result

from acoustid_stack.config import DatabaseName

pytestmark = pytest.mark.integration

RunDb = Callable[..., Result]
Connect = Callable[[DatabaseName], psycopg.Connection[tuple[Any, ...]]]


def test_fingerprint_changes_that_matter_to_the_index_are_logged_in_order(
    run_db: RunDb, connect: Connect
) -> None:
    run_db("upgrade", "fingerprint")
    conn = connect("fingerprint")
    track_id = conn.execute(
        "INSERT INTO track (gid) VALUES (gen_random_uuid()) RETURNING id"
    ).fetchone()
    row = conn.execute(
        "INSERT INTO fingerprint (fingerprint, length, track_id) VALUES (%s, 120, %s) RETURNING id",
        ([1, 2, 3], track_id[0] if track_id else None),
    ).fetchone()
    assert row is not None
    fingerprint_id = row[0]

    conn.execute("UPDATE fingerprint SET submission_count = 2 WHERE id = %s", (fingerprint_id,))
    conn.execute("UPDATE fingerprint SET fingerprint = %s WHERE id = %s", ([4, 5], fingerprint_id))
    conn.execute("DELETE FROM fingerprint WHERE id = %s", (fingerprint_id,))

    log = conn.execute(
        "SELECT fingerprint_id, op, xid > 0 FROM fpindex_changelog ORDER BY id"
    ).fetchall()
    assert log == [
        (fingerprint_id, "I", True),
        (fingerprint_id, "U", True),
        (fingerprint_id, "D", True),
    ]


def test_a_source_with_no_version_is_stored_once(run_db: RunDb, connect: Connect) -> None:
    run_db("upgrade", "app")
    conn = connect("app")
    conn.execute("INSERT INTO account (name, apikey) VALUES ('a', 'k1')")
    conn.execute(
        "INSERT INTO application (name, version, apikey, account_id) VALUES ('p', '1', 'k2', 1)"
    )
    insert = (
        "INSERT INTO source (application_id, account_id, version) VALUES (1, 1, NULL)"
        " ON CONFLICT DO NOTHING"
    )

    conn.execute(insert)
    conn.execute(insert)

    assert conn.execute("SELECT count(*) FROM source").fetchone() == (1,)
