"""Every page of the real website in headless Chromium at a phone's and a laptop's width:
no sideways scroll, a screenshot of each, and the accessibility check of what was rendered.

One `acoustid-stack run web` process and one Chromium serve the whole module. Screenshots are
kept in the test's temporary folder, named `<page>-<width>.png`.
"""

from __future__ import annotations

import os
import signal
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.dialects.postgresql import insert

from acoustid_stack.config import Settings
from acoustid_stack.db.migrate import upgrade
from acoustid_stack.db.schema import app as app_db
from acoustid_stack.local.process import ManagedProcess, free_port
from acoustid_stack.local.servers import http_ok, running
from acoustid_stack.web.statistics import COUNTER_LABELS
from api_support import ACOUSTID_STACK
from web_support import Browser, Rendering, accessibility_problems, chromium
from web_support.applications import new_application

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PAGES = ("/", "/stats", "/apikey")
WIDTHS = (375, 1280)
API_URL = "http://api.acoustid.test"


@pytest.fixture(scope="module")
def site(
    test_environ: dict[str, str], test_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The website, with wide statistics: lookups in the millions in the last hours, every
    daily counter in the hundreds of millions on two days."""
    list(upgrade(test_settings.database))
    engine = create_engine(test_settings.database.app.sqlalchemy_url())
    now = datetime.now(UTC)
    with engine.begin() as conn:
        _, app_id = new_application(conn, "layout")
        hours = [now - timedelta(hours=n) for n in range(1, 30)]
        lookups = [
            {
                "date": hour.date(),
                "hour": hour.hour,
                "application_id": app_id,
                "count_hits": 1_000_000 + 40_000 * n,
                "count_nohits": 5_000,
            }
            for n, hour in enumerate(hours)
        ]
        conn.execute(app_db.stats_lookups.insert().values(lookups))
        for days_ago in (1, 2):
            day = now.date() - timedelta(days=days_ago)
            rows = [{"name": name, "date": day, "value": 987_654_321} for name in COUNTER_LABELS]
            conn.execute(insert(app_db.stats).values(rows).on_conflict_do_nothing())
    engine.dispose()
    work = tmp_path_factory.mktemp("web")
    port = free_port()
    config = work / "acoustid.conf"
    config.write_text(f"[web]\nport = {port}\napi_url = {API_URL}\n")
    url = f"http://127.0.0.1:{port}"
    process = ManagedProcess(
        name="web",
        argv=[*ACOUSTID_STACK, "--config", str(config), "run", "web"],
        log_path=work / "web.log",
        ready=lambda: http_ok(f"{url}/_health"),
        env={**os.environ, **test_environ},
        stop_signal=signal.SIGTERM,
    )
    with running((process, url), timeout=60):
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with chromium(tmp_path_factory.mktemp("chromium")) as started:
        yield started


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def painted_colours(png: bytes) -> int:
    """How many different byte values the image's pixel data holds: a handful for a blank
    page, hundreds once text is drawn (anti-aliasing)."""
    chunks, at = [], 8
    while at < len(png):
        length = int.from_bytes(png[at : at + 4], "big")
        if png[at + 4 : at + 8] == b"IDAT":
            chunks.append(png[at + 8 : at + 8 + length])
        at += 12 + length
    return len(set(zlib.decompress(b"".join(chunks))))


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page", PAGES)
def test_the_page_fits_the_screen_without_sideways_scroll(
    site: str, browser: Browser, screenshots: Path, page: str, width: int
) -> None:
    rendering = browser.render(f"{site}{page}", width)
    name = page.strip("/") or "status"
    (screenshots / f"{name}-{width}.png").write_bytes(rendering.screenshot)

    assert not rendering.overflows, (
        f"{page} is {rendering.scroll_width} px wide at {width} px; past the edge: "
        f"{rendering.beyond}"
    )
    assert rendering.screenshot_size() == (width, 800)
    assert painted_colours(rendering.screenshot) > 50


@pytest.mark.parametrize("page", PAGES)
def test_the_rendered_page_passes_the_accessibility_check(
    site: str, browser: Browser, page: str
) -> None:
    rendering: Rendering = browser.render(f"{site}{page}", WIDTHS[0])

    assert accessibility_problems(rendering.html) == []
    assert "AcoustID" in rendering.html
    assert "acoustid-stack" in rendering.html
    assert f'href="{API_URL}/v2/docs"' in rendering.html
