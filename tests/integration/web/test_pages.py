"""The website's pages rendered with real data from the real databases, Redis and NATS."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.dialects.postgresql import insert
from starlette.testclient import TestClient

from acoustid_stack.config import Settings
from acoustid_stack.db.migrate import upgrade
from acoustid_stack.db.schema import app as app_db
from acoustid_stack.db.schema import ingest as ingest_db
from acoustid_stack.web.app import create_app
from web_support.applications import new_application

pytestmark = pytest.mark.integration

#: what a browser sends with the form posted from the site itself
SAME_ORIGIN = {"Origin": "http://testserver"}


@pytest.fixture(scope="module")
def settings(test_settings: Settings) -> Settings:
    list(upgrade(test_settings.database))
    return test_settings


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def application_id(settings: Settings) -> int:
    """An application with lookups this hour and daily counters, written as cron would, and a
    submission received this hour."""
    engine = create_engine(settings.database.app.sqlalchemy_url())
    now = datetime.now(UTC)
    with engine.begin() as conn:
        account_id, app_id = new_application(conn, "web")
        conn.execute(
            app_db.stats_lookups.insert().values(
                date=now.date(),
                hour=now.hour,
                application_id=app_id,
                count_hits=1234,
                count_nohits=5,
            )
        )
        # cron processes of other tests in this session may have counted today already
        counters = insert(app_db.stats).values(
            [
                {"name": "web.test_counter", "date": now.date(), "value": 4321},
                {"name": "account.all", "date": now.date(), "value": 1},
            ]
        )
        conn.execute(
            counters.on_conflict_do_update(
                index_elements=["name", "date"], set_={"value": counters.excluded.value}
            )
        )
    engine.dispose()
    engine = create_engine(settings.database.ingest.sqlalchemy_url())
    with engine.begin() as conn:
        conn.execute(
            ingest_db.submission.insert().values(
                account_id=account_id, application_id=app_id, fingerprint=[1, 2, 3], length=10
            )
        )
    engine.dispose()
    return int(app_id or 0)


def test_the_status_page_shows_every_service_up_and_the_counts(
    client: TestClient, application_id: int
) -> None:
    page = client.get("/")

    assert page.status_code == 200
    for service in (
        "PostgreSQL app",
        "PostgreSQL fingerprint",
        "PostgreSQL ingest",
        "Redis",
        "NATS",
    ):
        assert service in page.text
    assert "Lookups in the last hour" in page.text
    lookups = re.search(
        r"Lookups in the last hour</th>\s*<td class=\"number\">([\d,]+)<", page.text
    )
    assert lookups
    assert int(lookups.group(1).replace(",", "")) >= 1234 + 5  # ours, maybe others' too


def test_the_status_page_says_down_for_an_index_that_does_not_answer(client: TestClient) -> None:
    page = client.get("/")

    # the session's settings point at the default index address, where nothing listens
    assert re.search(r"Index shard 1</th>\s*<td class=\"down\">down", page.text)


def test_the_stats_page_names_daily_counters_for_people(
    client: TestClient, application_id: int
) -> None:
    page = client.get("/stats")

    assert page.status_code == 200
    headers = re.findall(r'<th scope="col">([^<]+)</th>', page.text)
    assert {"Accounts", "Web test counter"} <= set(headers)
    assert "account.all" not in page.text
    assert "web.test_counter" not in page.text
    assert "4,321" in page.text
    assert "every hour" in page.text  # why the figures trail the status page


def test_the_stats_page_charts_and_lists_lookups_and_submissions_of_this_hour(
    client: TestClient, application_id: int
) -> None:
    page = client.get("/stats")

    this_hour = f"{datetime.now(UTC):%Y-%m-%d %H}:00"
    # this hour's row sums every application's lookups: ours, and other tests' in the session
    row = re.search(
        rf'<th scope="row" class="day">{this_hour}</th>\s*<td class="number">([\d,]+)</td>'
        r'<td class="number">([\d,]+)</td>\s*<td class="number">([\d,]+)</td>',
        page.text,
    )
    assert row, page.text
    hits, misses, submissions = (int(value.replace(",", "")) for value in row.groups())
    assert hits >= 1234
    assert misses >= 5
    assert submissions >= 1
    for chart in ("lookups-chart", "submissions-chart"):
        svg = re.search(rf'<svg id="{chart}" role="img".*?</svg>', page.text, re.S)
        assert svg, chart
        bars = re.findall(r'<rect [^>]*height="([\d.]+)"', svg.group(0))
        assert len(bars) == 48
        assert float(bars[-1]) > 0  # this hour, the last bar, has lookups and a submission
    assert "<script" not in page.text


def test_the_api_key_form_creates_an_application_with_a_new_key(
    client: TestClient, settings: Settings
) -> None:
    name = f"tagger-{secrets.token_hex(3)}"
    page = client.post(
        "/apikey",
        data={"name": name, "version": "2.1", "email": "", "website": ""},
        headers=SAME_ORIGIN,
    )

    assert page.status_code == 201
    key = re.search(r'<code id="apikey">([^<]+)</code>', page.text)
    assert key
    engine = create_engine(settings.database.app.sqlalchemy_url())
    with engine.connect() as conn:
        row = conn.execute(
            select(app_db.application).where(app_db.application.c.apikey == key.group(1))
        ).one()
    engine.dispose()
    assert (row.name, row.version, row.active) == (name, "2.1", True)


def test_the_api_key_form_explains_a_missing_field_and_keeps_the_input(client: TestClient) -> None:
    page = client.post("/apikey", data={"name": "only a name", "version": " "}, headers=SAME_ORIGIN)

    assert page.status_code == 400
    assert "Please give the application&#39;s version." in page.text
    assert 'value="only a name"' in page.text


def test_health_answers_ok(client: TestClient) -> None:
    assert client.get("/_health").text == "ok"
