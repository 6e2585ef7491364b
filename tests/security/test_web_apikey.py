"""Issue 17 item 5: the API key form refuses forged, oversized and multipart posts, and
limits the keys one address creates."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, func, select
from starlette.testclient import TestClient

from acoustid_stack.config import Settings
from acoustid_stack.db.schema import app as app_db
from acoustid_stack.web.app import create_app
from security.web_fixtures import web_client

pytestmark = pytest.mark.integration

__all__ = ["web_client"]

SAME_ORIGIN = {"Origin": "http://testserver"}


def applications_named(settings: Settings, name: str) -> int:
    engine = create_engine(settings.database.app.sqlalchemy_url())
    with engine.connect() as conn:
        count = conn.scalar(
            select(func.count())
            .select_from(app_db.application)
            .where(app_db.application.c.name == name)
        )
    engine.dispose()
    return int(count or 0)


def form(name: str) -> dict[str, str]:
    return {"name": name, "version": "1.0", "email": "", "website": ""}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Referer": "https://evil.example/page"},
    ],
    ids=["no-origin", "other-origin", "null-origin", "other-referer"],
)
def test_a_post_from_another_site_creates_nothing(
    web_client: TestClient, migrated: Settings, headers: dict[str, str]
) -> None:
    name = f"csrf-{secrets.token_hex(4)}"

    page = web_client.post("/apikey", data=form(name), headers=headers)

    assert page.status_code == 403
    assert applications_named(migrated, name) == 0


def test_a_post_from_this_site_by_referer_is_accepted(
    web_client: TestClient, migrated: Settings
) -> None:
    name = f"referer-{secrets.token_hex(4)}"

    page = web_client.post(
        "/apikey", data=form(name), headers={"Referer": "http://testserver/apikey"}
    )

    assert page.status_code == 201
    assert applications_named(migrated, name) == 1


def test_a_multipart_post_with_a_file_part_is_refused(
    web_client: TestClient, migrated: Settings
) -> None:
    name = f"multipart-{secrets.token_hex(4)}"

    page = web_client.post(
        "/apikey",
        data=form(name),
        files={"upload": ("big.bin", b"\0" * 1024 * 1024, "application/octet-stream")},
        headers=SAME_ORIGIN,
    )

    assert page.status_code == 415
    assert applications_named(migrated, name) == 0


def test_a_form_larger_than_8_kib_is_refused(web_client: TestClient, migrated: Settings) -> None:
    name = f"large-{secrets.token_hex(4)}"

    page = web_client.post(
        "/apikey", data={**form(name), "padding": "x" * 9000}, headers=SAME_ORIGIN
    )

    assert page.status_code == 413
    assert applications_named(migrated, name) == 0


@pytest.fixture
def limited_client(migrated: Settings) -> Iterator[TestClient]:
    """The site allowing 2 keys an hour per address, seen from an address of its own."""
    settings = dataclasses.replace(
        migrated, web=dataclasses.replace(migrated.web, apikeys_per_hour=2)
    )
    # the session's Redis key prefix is its own, so this address has created nothing yet
    with TestClient(create_app(settings), client=("192.0.2.7", 40000)) as client:
        yield client


def test_one_address_creates_at_most_the_configured_keys_per_hour(
    limited_client: TestClient, migrated: Settings
) -> None:
    name = f"limited-{secrets.token_hex(4)}"

    statuses = [
        limited_client.post("/apikey", data=form(name), headers=SAME_ORIGIN).status_code
        for _ in range(3)
    ]

    assert statuses == [201, 201, 429]
    assert applications_named(migrated, name) == 2


def test_behind_a_trusted_proxy_the_limit_counts_each_forwarded_client(
    migrated: Settings,
) -> None:
    """Behind the chart's ingress every request came from the ingress controller: one
    budget for all clients. [web] trusted_proxies reads the client from X-Forwarded-For
    as the api does, and only from those proxies."""
    settings = dataclasses.replace(
        migrated,
        web=dataclasses.replace(migrated.web, apikeys_per_hour=1, trusted_proxies=["10.0.0.0/8"]),
    )
    name = f"proxied-{secrets.token_hex(4)}"

    def post(client: TestClient, forwarded_for: str) -> int:
        headers = SAME_ORIGIN | {"X-Forwarded-For": forwarded_for}
        return client.post("/apikey", data=form(name), headers=headers).status_code

    with TestClient(create_app(settings), client=("10.1.2.3", 40000)) as ingress:
        assert post(ingress, "198.51.100.1") == 201
        assert post(ingress, "198.51.100.1") == 429
        assert post(ingress, "198.51.100.2") == 201
        # a client's own X-Forwarded-For text sits left of the address the proxy appended
        assert post(ingress, "203.0.113.50, 198.51.100.1") == 429
    with TestClient(create_app(settings), client=("192.0.2.9", 40000)) as direct:
        assert post(direct, "198.51.100.3") == 201
        # not a trusted proxy: its header is ignored and the peer's budget is spent
        assert post(direct, "198.51.100.4") == 429
    assert applications_named(migrated, name) == 3
