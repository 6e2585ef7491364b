"""The HTTP protocol of our uvicorn servers (api, web, index): httptools with a header cap.

uvicorn's httptools protocol has no limit on the request line and headers: a 64 MiB header
was read to its end (+65 MB RSS in one worker) and answered 200. uvicorn's h11 protocol has
a limit (`h11_max_incomplete_event_size`) but parses in pure Python, costing the api CPU on
every request. So the httptools protocol counts the bytes it receives while a request's
headers are incomplete and answers 431 and closes the connection past MAX_HEADER_BYTES,
having buffered at most that plus one read.

uvicorn also lets a connection that is opened, or that starts a request, and then sends its
headers slowly (or not at all) stay forever: its keep-alive timer runs only between a
response and the next byte. Here a request's line and headers must be complete within
`timeout_keep_alive` seconds of the connection opening or of the previous response.

uvicorn writes a response's status line and headers, then its body, as two writes: two
`send` calls and often two TCP segments for every small answer. Here the head is held until
the first body bytes and leaves with them in one write (`_OneWriteResponses`).
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

#: request line and headers of one request; browsers and our clients send a few KiB
MAX_HEADER_BYTES: Final = 64 * 1024

_TOO_LARGE: Final = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 31\r\n"
    b"connection: close\r\n"
    b"\r\n"
    b"Request header fields too large"
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol refusing requests whose headers exceed MAX_HEADER_BYTES."""

    _reading_headers = True
    _header_bytes = 0
    _message_ended = False
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._message_ended = False
        super().data_received(data)
        # counted after parsing, and only reads that neither completed the headers nor ended
        # a message: those may hold body bytes (the next request's start is left uncounted,
        # at most one read)
        if not self._reading_headers or self._message_ended or self.transport.is_closing():
            return
        self._header_bytes += len(data)
        if self._header_bytes > MAX_HEADER_BYTES:
            self.logger.warning("request headers over %d bytes refused", MAX_HEADER_BYTES)
            self.transport.write(_TOO_LARGE)
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._stop_header_timer()
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.scope["method"] != "HEAD":
            # a HEAD response has no body write that would carry its head
            self.cycle.transport = _OneWriteResponses(self.transport, self.cycle)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_headers = True
        self._header_bytes = 0
        self._message_ended = True

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # a pipelined request whose headers are already in is being served: no timer for it
        if self._reading_headers and not self.transport.is_closing():
            self._start_header_timer()

    def _start_header_timer(self) -> None:
        self._stop_header_timer()
        self._header_timer = self.loop.call_later(self.timeout_keep_alive, self._headers_late)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self._reading_headers and not self.transport.is_closing():
            self.transport.close()


class _OneWriteResponses:
    """The transport one request's cycle writes to: the first write once the response has
    started (its status line and headers) is held and joined to the next one (the first
    body bytes: uvicorn writes each body message, even an empty last one)."""

    def __init__(self, transport: asyncio.Transport, cycle: RequestResponseCycle) -> None:
        self._transport = transport
        self._cycle = cycle
        self._head: bytes | None = None
        self._head_seen = False

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data, self._head = self._head + data, None
        elif not self._head_seen and self._cycle.response_started:
            self._head_seen = True
            self._head = data
            return
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
