"""What every request shares: bodies (gzip, 1 MiB), CORS, paths, v1, health, metrics, OpenAPI."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from acoustid_stack.api.openapi import ROUTES
from acoustid_stack.config import Settings
from api_support import Keys

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


def test_gzip_form_bodies_are_inflated(client: TestClient, keys: Keys) -> None:
    body = gzip.compress(f"client={keys.client_key}&trackid=not-a-uuid".encode())
    response = client.post(
        "/v2/lookup",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "GZIP"},
    )
    assert response.json()["error"]["code"] == 7  # parsed: the key was accepted


def test_broken_gzip_is_a_plain_400(client: TestClient) -> None:
    response = client.post("/v2/lookup", content=b"not gzip", headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")


def test_bodies_over_one_mib_are_error_19(client: TestClient) -> None:
    big = b"meta=" + b"x" * MIB
    plain = client.post(
        "/v2/lookup?format=xml",
        content=big,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert plain.status_code == 413
    assert b"<code>19</code>" in plain.content
    bomb = client.post(
        "/v2/lookup",
        content=gzip.compress(big),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "gzip"},
    )
    assert bomb.status_code == 413
    assert bomb.json()["error"] == {"code": 19, "message": "request too large"}
    declared = client.post(
        "/v2/lookup",
        content=gzip.compress(big) + b"\0" * MIB,
        headers={"Content-Encoding": "gzip"},
    )
    assert declared.status_code == 400
    assert declared.text == "Request body is too large"


def test_more_than_1000_form_fields_are_error_19(client: TestClient) -> None:
    body = "&".join(f"f{i}=1" for i in range(1001))
    response = client.post(
        "/v2/lookup", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.json()["error"]["code"] == 19


def test_multipart_forms_are_read_too(client: TestClient, keys: Keys) -> None:
    response = client.post(
        "/v2/lookup", files={"client": (None, keys.client_key), "trackid": (None, "nope")}
    )
    assert response.json()["error"]["code"] == 7


def test_every_response_allows_any_origin(client: TestClient) -> None:
    for path in ("/v2/lookup", "/_health_docker", "/nowhere"):
        assert client.get(path).headers["access-control-allow-origin"] == "*"


def test_trailing_and_double_slashes_reach_the_route(client: TestClient) -> None:
    assert client.post("http://testserver//v2//lookup/").json()["error"]["code"] == 2


def test_unknown_paths_are_404(client: TestClient) -> None:
    assert client.get("/v3/lookup").status_code == 404


def test_v1_answers_not_supported_in_xml(client: TestClient) -> None:
    response = client.post("/lookup", data={"client": "x"})
    assert response.status_code == 400
    assert response.text.startswith(
        '<?xml version="1.0" encoding="UTF-8"?><response status="error">'
    )
    assert "API v1 is not supported" in response.text


def test_health_endpoints_turn_503_while_the_shutdown_file_exists(
    client: TestClient, api_settings: Settings
) -> None:
    for path in ("/_health", "/_health_ro", "/_health_docker"):
        response = client.get(path)
        assert (response.status_code, response.text) == (200, "ok")
    marker = Path(api_settings.website.shutdown_file)
    marker.touch()
    try:
        for path in ("/_health", "/_health_ro", "/_health_docker"):
            response = client.get(path)
            assert (response.status_code, response.text) == (503, "shutdown in process")
    finally:
        marker.unlink()


def test_metrics_use_the_seed_names(client: TestClient, keys: Keys) -> None:
    client.post("/v2/lookup", data={"client": keys.client_key, "trackid": "bad"})
    text = client.get("/metrics").text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    names = {name for name, _ in samples}
    assert {
        "api_requests_total",
        "api_request_duration_seconds_count",
        "api_handled_errors_total",
        "api_unhandled_errors_total",
        "api_lookup_searches_total",
        "api_lookup_matches_total",
        "new_submissions_total",
    } <= names
    labels = (("endpoint", "lookup"), ("method", "POST"), ("status", "400"))
    assert samples[("api_requests_total", labels)] >= 1
    assert samples[("api_handled_errors_total", (("error_code", "7"),))] >= 1


def test_openapi_document_is_valid_and_lists_every_v2_route(client: TestClient) -> None:
    document = json.loads(client.get("/v2/openapi.json").text)
    validate(document)
    assert set(document["paths"]) == set(ROUTES)
    paths = {getattr(route, "path", "") for route in client.app.routes}  # type: ignore[attr-defined]
    # the document itself and the pages rendered from it are not API endpoints
    pages = {"/v2/", "/v2/openapi.json", "/v2/docs"}
    routed = {path for path in paths if path.startswith("/v2/") and path not in pages}
    assert routed == set(document["paths"])
