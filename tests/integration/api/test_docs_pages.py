"""The api's start page and reference: every endpoint of the OpenAPI document, working links,
and a lookup example that works when pasted into a shell."""

from __future__ import annotations

import html
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from acoustid_stack.api.docs import CLIENT_KEY_PLACEHOLDER, anchor
from acoustid_stack.fingerprint.audio import write_chords
from api_support import Keys, api_server
from web_support import accessibility_problems, chromium

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("path", ["/", "/v2/", "/v2"])
def test_the_base_url_serves_a_page_naming_every_endpoint_and_linking_the_docs(
    client: TestClient, path: str
) -> None:
    page = client.get(path)
    document = client.get("/v2/openapi.json").json()

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<html lang="en">' in page.text
    assert 'href="/v2/openapi.json"' in page.text
    assert 'href="/v2/docs"' in page.text
    for endpoint in document["paths"]:
        assert f'href="/v2/docs#{anchor(endpoint)}"><code>{endpoint}</code>' in page.text


def test_the_reference_documents_every_endpoint_and_parameter_of_the_openapi_document(
    client: TestClient,
) -> None:
    page = client.get("/v2/docs")
    document = client.get("/v2/openapi.json").json()

    assert page.status_code == 200
    sections = dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', page.text, re.S))
    assert set(sections) == {anchor(path) for path in document["paths"]}
    for path, item in document["paths"].items():
        section = sections[anchor(path)]
        for parameter in item["get"]["parameters"]:
            assert f"<code>{parameter['name']}</code>" in section, (path, parameter["name"])
        for status in item["get"]["responses"]:
            assert f"<li>{status}: " in section, (path, status)
    # no asset from elsewhere: the reference works offline
    assert not re.search(r'(src|href)="https?://', page.text)


@pytest.fixture(scope="module")
def server(api_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with api_server(tmp_path_factory.mktemp("api"), api_env, workers=1) as (url, _):
        yield url


def test_the_lookup_example_pasted_into_a_shell_answers_ok(
    server: str, keys: Keys, tmp_path: Path
) -> None:
    song = write_chords(tmp_path / "song.wav", seed=21, seconds=20)
    page = httpx.get(f"{server}/v2/", timeout=10).text
    example = re.search(r'<pre id="lookup-example"><code>(.*?)</code></pre>', page, re.S)
    assert example
    command = html.unescape(example.group(1))
    assert f"'{server}/v2/lookup?client={CLIENT_KEY_PLACEHOLDER}&" in command
    command = command.replace(CLIENT_KEY_PLACEHOLDER, keys.client_key).replace(
        "song.mp3", str(song)
    )
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=60, check=False
    )

    answer = json.loads(done.stdout)
    assert answer["status"] == "ok", answer
    assert answer["results"] == []  # a song nobody submitted


@pytest.mark.slow
def test_the_pages_fit_a_phone_and_a_laptop_and_pass_the_accessibility_check(
    server: str, tmp_path: Path
) -> None:
    with chromium(tmp_path) as browser:
        for page in ("/v2/", "/v2/docs"):
            for width in (375, 1280):
                rendering = browser.render(f"{server}{page}", width)
                (tmp_path / f"{anchor(page) or 'start'}-{width}.png").write_bytes(
                    rendering.screenshot
                )

                assert not rendering.overflows, (page, width, rendering.beyond)
                assert rendering.screenshot_size() == (width, 800)
            assert accessibility_problems(rendering.html) == [], page
