"""The website's app in-process on the real databases, Redis and NATS, for security tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from acoustid_stack.config import Settings
from acoustid_stack.web.app import create_app


@pytest.fixture(scope="module")
def web_client(migrated: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(migrated)) as client:
        yield client
