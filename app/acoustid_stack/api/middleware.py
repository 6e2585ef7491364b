"""ASGI middleware in upstream's order (reference §1.2): CORS → path cleanup → gzip bodies.

Pure ASGI (no BaseHTTPMiddleware) so the request path stays one coroutine deep.
"""

from __future__ import annotations

import re
import zlib
from typing import Final

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from acoustid_stack.api.params import MAX_BODY_SIZE

_SLASHES: Final = re.compile(r"/{2,}")


#: upstream answers every request with it (browser widgets call the API)
CORS_HEADERS: Final = {"Access-Control-Allow-Origin": "*"}


class PathCleanupMiddleware:
    """`//` → `/` and no trailing slash: upstream routes with `strict_slashes=False`, so
    `/v2/lookup/` works without a redirect (a redirect would lose a POST body)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = _SLASHES.sub("/", scope["path"])
            if len(path) > 1:
                path = path.rstrip("/") or "/"
            if path != scope["path"]:
                scope = {**scope, "path": path, "raw_path": path.encode()}
        await self.app(scope, receive, send)


class GzipRequestMiddleware:
    """Inflates `Content-Encoding: gzip` request bodies (pyacoustid sends them).

    As upstream: a declared or compressed size over 1 MiB and an undecodable body are plain
    400 answers, not the JSON envelope. Inflation stops at 1 MiB + 1 byte so a gzip bomb
    costs nothing; the parameter reader then sees the oversize body and answers error 19.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if headers.get("content-encoding", "").strip().lower() != "gzip":
            await self.app(scope, receive, send)
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_SIZE:
            await _too_large(scope, receive, send)
            return
        compressed = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            compressed += message.get("body", b"")
            if len(compressed) > MAX_BODY_SIZE:
                await _too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        try:
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            body = inflater.decompress(bytes(compressed), MAX_BODY_SIZE + 1)
        except zlib.error:
            response = PlainTextResponse("Invalid gzip data in request body", 400)
            await response(scope, receive, send)
            return
        new_headers = [
            (name, value)
            for name, value in scope["headers"]
            if name.lower() not in (b"content-encoding", b"content-length")
        ]
        new_headers.append((b"content-length", str(len(body)).encode()))
        sent = False

        async def inflated_receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app({**scope, "headers": new_headers}, inflated_receive, send)


async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("Request body is too large", 400)(scope, receive, send)
