"""Headless Chromium (Debian `chromium`) driven over the DevTools protocol: one process for
many pages and widths, each page measured for horizontal overflow and screenshotted.

The pages forbid scripts (Content-Security-Policy); the DevTools protocol evaluates its
expressions outside that policy, so nothing has to be loosened for the test.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = "chromium"
START_TIMEOUT = 30.0
PAGE_TIMEOUT = 30.0
HEIGHT = 800

#: what the page reports about its width: the document's scroll width against the viewport,
#: and the elements that reach past the screen's right edge (for the failure message)
_MEASURE = """(screen => JSON.stringify({
  scrollWidth: document.documentElement.scrollWidth,
  viewportWidth: document.documentElement.clientWidth,
  html: document.documentElement.outerHTML,
  beyond: Array.from(document.querySelectorAll('body *'))
    .filter(e => e.getBoundingClientRect().right > screen + 0.5)
    .slice(0, 5).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
      + (e.className && e.className.baseVal === undefined ? '.' + e.className : '')),
}))"""


@dataclass(frozen=True)
class Rendering:
    url: str
    width: int
    scroll_width: int
    viewport_width: int
    beyond: list[str]
    html: str
    screenshot: bytes

    @property
    def overflows(self) -> bool:
        """Wider than the screen: a phone zooms such a page out, so the layout viewport grows
        with it, and the width asked for is the measure."""
        return max(self.scroll_width, self.viewport_width) > self.width

    def screenshot_size(self) -> tuple[int, int]:
        """(width, height) from the PNG header."""
        assert self.screenshot[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", self.screenshot[16:24])
        return width, height


class Browser:
    """One headless Chromium; `render(url, width)` opens the page in a viewport that wide
    (a phone's under 600 px: the viewport meta tag counts, as on a phone)."""

    def __init__(self, devtools: str) -> None:
        self.devtools = devtools

    def render(self, url: str, width: int) -> Rendering:
        return asyncio.run(asyncio.wait_for(self._render(url, width), PAGE_TIMEOUT))

    async def _render(self, url: str, width: int) -> Rendering:
        async with aiohttp.ClientSession() as http:
            async with http.put(f"{self.devtools}/json/new?about:blank") as answer:
                target = await answer.json()
            try:
                async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    session = _Session(ws)
                    await session.call(
                        "Emulation.setDeviceMetricsOverride",
                        width=width,
                        height=HEIGHT,
                        deviceScaleFactor=1,
                        mobile=width < 600,
                    )
                    await session.call("Page.enable")
                    await session.call("Page.navigate", url=url)
                    await session.event("Page.loadEventFired")
                    evaluated = await session.call(
                        "Runtime.evaluate", expression=f"{_MEASURE}({width})", returnByValue=True
                    )
                    measured = json.loads(evaluated["result"]["value"])
                    shot = await session.call("Page.captureScreenshot", format="png")
            finally:
                async with http.get(f"{self.devtools}/json/close/{target['id']}"):
                    pass
        return Rendering(
            url=url,
            width=width,
            scroll_width=measured["scrollWidth"],
            viewport_width=measured["viewportWidth"],
            beyond=measured["beyond"],
            html=measured["html"],
            screenshot=base64.b64decode(shot["data"]),
        )


class _Session:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[str] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            message = await self.ws.receive_json()
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message["result"])
            if "method" in message:
                self.events.append(message["method"])

    async def event(self, name: str) -> None:
        while name not in self.events:
            message = await self.ws.receive_json()
            if "method" in message:
                self.events.append(message["method"])


@contextmanager
def chromium(work: Path) -> Iterator[Browser]:
    """A headless Chromium with its profile in `work`, stopped (by its pid) on exit."""
    binary = shutil.which(CHROMIUM)
    assert binary, "chromium not found: apt-get install chromium (the README's test command)"
    profile = work / "profile"
    profile.mkdir(parents=True, exist_ok=True)
    port_file = profile / "DevToolsActivePort"
    port_file.unlink(missing_ok=True)  # a previous run's
    argv = [
        binary,
        "--headless",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "about:blank",
    ]
    if os.geteuid() == 0:
        argv.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    log = (work / "chromium.log").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not (port_file.exists() and port_file.read_text().strip()):
            assert process.poll() is None, (work / "chromium.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.05)
        port = port_file.read_text().split()[0]
        yield Browser(f"http://127.0.0.1:{port}")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
