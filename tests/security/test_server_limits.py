"""Issue 17 item 6: api, web and index servers refuse a request whose headers are huge
instead of reading them to the end."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from acoustid_stack.local.process import ManagedProcess, free_port
from acoustid_stack.local.servers import http_ok, running
from api_support import ACOUSTID_STACK, api_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HUGE = 64 * 1024 * 1024
#: the web server's [web] timeout_keep_alive, also its deadline for a request's headers
HEADER_SECONDS = 1


def send_huge_header(url: str) -> tuple[int, bytes]:
    """Send a request whose one header is 64 MiB; (bytes of it sent, what came back) where
    sending stops when the server closes the connection."""
    parts = urlsplit(url)
    sent = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as conn:
        conn.sendall(b"GET /_health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        chunk = b"a" * 65536
        try:
            while sent < HUGE:
                conn.sendall(chunk)
                sent += len(chunk)
            conn.sendall(b"\r\n\r\n")
        except OSError:
            pass  # closed by the server: what this test hopes for
        try:
            reply = conn.recv(100)
        except OSError:
            reply = b""  # reset: the server closed with our bytes unread
    return sent, reply


@pytest.fixture(scope="module")
def web_url(
    migrated: object, test_environ: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = ManagedProcess(
        name="web",
        argv=[*ACOUSTID_STACK, "run", "web"],
        log_path=tmp_path_factory.mktemp("web") / "web.log",
        ready=lambda: http_ok(f"{url}/_health"),
        env={
            **os.environ,
            **test_environ,
            "ACOUSTID_WEB_PORT": str(port),
            "ACOUSTID_WEB_TIMEOUT_KEEP_ALIVE": str(HEADER_SECONDS),
        },
        stop_signal=signal.SIGTERM,
    )
    with running((process, url), timeout=60):
        yield url


@pytest.fixture(scope="module")
def api_url(api_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work: Path = tmp_path_factory.mktemp("api-limits")
    with api_server(work, api_env, workers=1) as (url, _):
        yield url


@pytest.mark.parametrize("server", ["api_url", "web_url", "index_url"])
def test_a_64_mib_header_is_refused_without_being_read_to_the_end(
    server: str, request: pytest.FixtureRequest
) -> None:
    url: str = request.getfixturevalue(server)

    sent, reply = send_huge_header(url)

    assert sent < HUGE
    assert reply == b"" or reply.startswith(b"HTTP/1.1 431 ")
    # and the server still serves
    assert http_ok(f"{url}/_health" if server != "api_url" else f"{url}/_health_docker")


def test_large_bodies_on_one_keep_alive_connection_are_not_taken_for_headers(
    index_url: str,
) -> None:
    with httpx.Client(timeout=30) as client:
        statuses = [
            client.post(f"{index_url}/_health", content=b"x" * 3_000_000).status_code
            for _ in range(4)
        ]

    assert 431 not in statuses
    assert statuses == [405] * 4


@pytest.mark.parametrize("start", [b"", b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "])
def test_a_connection_whose_headers_do_not_come_is_closed(web_url: str, start: bytes) -> None:
    parts = urlsplit(web_url)
    # far longer than the server's deadline: a connection held forever fails on this timeout
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as conn:
        conn.sendall(start)
        assert conn.recv(100) == b""
