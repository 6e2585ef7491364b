"""v1 `/lookup` and `/submit`: answered with a clear "not supported" error in v1's XML shape."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from acoustid_stack.api.render import to_xml


async def not_supported(request: Request) -> Response:
    message = f"API v1 is not supported here; use /v2{request.url.path} (API v2) instead"
    return Response(
        to_xml({"@status": "error", "error": message}),
        400,
        media_type="text/xml; charset=UTF-8",
    )
