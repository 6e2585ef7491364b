"""Issue 17 item 11: the api answers only the methods it defines (GET, HEAD, POST, and OPTIONS
for browsers); any other is 405, not a second way to call an endpoint."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from acoustid_stack.api.openapi import ROUTES

pytestmark = [pytest.mark.security, pytest.mark.integration]

PATHS = [*sorted(ROUTES), "/lookup", "/submit", "/_health", "/_health_ro", "/_health_docker"]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "TRACE", "PROPFIND"])
@pytest.mark.parametrize("path", PATHS)
def test_undefined_methods_are_405(client: TestClient, path: str, method: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {
        "GET",
        "HEAD",
        "POST",
        "OPTIONS",
    }


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_defined_methods_still_answer(client: TestClient, method: str) -> None:
    response = client.request(method, "/v2/lookup")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 2
