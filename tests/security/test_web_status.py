"""Issue 17 item 9: the public status page shows no internal details and reuses its figures
instead of querying every service on each view."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

from acoustid_stack.config import Settings
from acoustid_stack.db.schema import app as app_db
from acoustid_stack.web.app import create_app
from web_support.applications import new_application

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cached_client(migrated: Settings) -> Iterator[TestClient]:
    """The site keeping its status figures for an hour."""
    settings = dataclasses.replace(
        migrated, web=dataclasses.replace(migrated.web, status_cache_seconds=3600)
    )
    with TestClient(create_app(settings)) as client:
        yield client


def lookups_shown(page: str) -> int:
    found = re.search(r"Lookups in the last hour</th>\s*<td class=\"number\">([\d,]+)<", page)
    assert found, page
    return int(found.group(1).replace(",", ""))


def test_the_status_page_shows_no_server_version_nor_internal_address(
    cached_client: TestClient, migrated: Settings
) -> None:
    engine = create_engine(migrated.database.app.sqlalchemy_url())
    with engine.connect() as conn:
        version = str(conn.scalar(text("SHOW server_version")))
    engine.dispose()

    page = cached_client.get("/").text

    assert version not in page
    # the session's index address, where nothing listens: neither it nor the error shows
    for shard in migrated.index.shards:
        assert shard.rstrip("/") not in page
    assert "connection attempts failed" not in page.lower()
    assert "Index shard 1" in page


def test_views_within_the_cache_time_reuse_the_figures(
    cached_client: TestClient, migrated: Settings
) -> None:
    first = lookups_shown(cached_client.get("/").text)
    engine = create_engine(migrated.database.app.sqlalchemy_url())
    now = datetime.now(UTC)
    with engine.begin() as conn:
        _, app_id = new_application(conn, "status")
        conn.execute(
            app_db.stats_lookups.insert().values(
                date=now.date(),
                hour=now.hour,
                application_id=app_id,
                count_hits=777,
                count_nohits=0,
            )
        )
    engine.dispose()

    assert lookups_shown(cached_client.get("/").text) == first
