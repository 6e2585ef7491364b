"""The website's POST bodies: small URL-encoded forms only, checked to come from this site.

Cross-site request forgery is refused by an Origin check rather than a token: it needs no
session or stored state, does not depend on `[website] secret` (optional, unset by default),
works unchanged across several workers, and every current browser sends Origin with a form
POST. A POST with neither Origin nor Referer is refused too: browsers always send one of them
to this site (Referrer-Policy: same-origin), so only a script would omit both.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request

#: the API key form is four fields of at most 200 characters
MAX_FORM_BYTES: Final = 8 * 1024
FORM_TYPE: Final = "application/x-www-form-urlencoded"


class FormRefused(Exception):
    """A POST the site does not accept; `status` is the HTTP answer, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_same_origin(request: Request, base_url: str) -> None:
    """Refuse (403) a POST whose Origin, or else Referer, is not this site: `base_url`'s
    origin, or the origin the request was addressed to (a browser's Host is the real one)."""
    sender = request.headers.get("origin") or request.headers.get("referer")
    if not sender or sender == "null":
        raise FormRefused(403, "The form must be sent from this site (no Origin or Referer).")
    own = {_origin(base_url), _origin(f"{request.url.scheme}://{request.headers.get('host')}")}
    if _origin(sender) not in own:
        raise FormRefused(403, "The form must be sent from this site.")


async def small_form(request: Request) -> dict[str, str]:
    """The URL-encoded form of at most MAX_FORM_BYTES: 415 for any other type (multipart
    would spool file parts to disk), 413 past the size, read no further than that."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM_TYPE:
        raise FormRefused(415, "The form must be sent URL-encoded, without files.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise FormRefused(413, "The form is too large.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormRefused(413, "The form is too large.")
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
