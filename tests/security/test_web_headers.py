"""Issue 17 item 10: the website's security headers, and no redirect built from Host."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from security.web_fixtures import web_client

pytestmark = pytest.mark.integration

__all__ = ["web_client"]


@pytest.mark.parametrize("path", ["/", "/apikey", "/_health", "/no-such-page"])
def test_every_answer_carries_the_security_headers(web_client: TestClient, path: str) -> None:
    page = web_client.get(path)

    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "form-action 'self'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "same-origin"


def test_a_forged_host_header_never_reaches_a_redirect(web_client: TestClient) -> None:
    page = web_client.get("/stats/", headers={"Host": "evil.example"}, follow_redirects=False)

    assert "evil.example" not in page.headers.get("location", "")
    assert page.status_code == 404
