"""Request parameters as upstream reads them (`request.values`): query string + form body.

Form bodies may be urlencoded (what pyacoustid sends, usually gzipped — `middleware.py`
inflates those) or multipart. Both are capped at 1 MiB and 1000 fields (error 19).
Batch parameters carry a numeric suffix (`fingerprint.3`); `suffixes` finds them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncGenerator, Iterable
from typing import Final
from urllib.parse import parse_qsl

from starlette.datastructures import MultiDict, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from acoustid_stack.api import errors
from acoustid_stack.db import text_limits

MAX_BODY_SIZE: Final = 1024 * 1024
MAX_FORM_FIELDS: Final = 1000

# \Z, not $: `$` also matches before a final newline, which uuid.UUID() then refuses
_UUID: Final = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\Z")
_FOREIGN_ID: Final = re.compile(r"^[0-9a-z]+:.+$")
# At most 9 ASCII digits: a longer index is no batch entry (int() refuses over 4300 digits,
# and a form holds at most MAX_FORM_FIELDS entries anyway), so the name is ignored as unknown.
_SUFFIX: Final = re.compile(r"^(?P<base>[^.]+)\.(?P<index>[0-9]{1,9})\Z")


class MalformedBody(Exception):
    """A body that cannot be parsed at all: a plain-text 400, like werkzeug's, not an envelope."""


class Params:
    """Every value of every parameter, query string first, then the body (as werkzeug does)."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        # NUL characters are dropped: PostgreSQL text cannot hold them, and a key or title
        # carrying one would otherwise fail the query (upstream answers those with a 500)
        self._values: MultiDict = MultiDict(
            [(name, value.replace("\x00", "")) for name, value in items]
        )
        # werkzeug's `get` answers the FIRST value of a repeated name; MultiDict's the last
        self._first: dict[str, str] = {}
        for name, value in self._values.multi_items():
            self._first.setdefault(name, value)

    def get(self, name: str) -> str | None:
        """The first value, or None when absent."""
        return self._first.get(name)

    def label(self, name: str, limit: int) -> str | None:
        """A value that only labels what is stored (a version, a file format), cut to its
        `text_limits` length; None when absent or empty."""
        return (self.get(name) or "")[:limit] or None

    def getlist(self, name: str) -> list[str]:
        return [value for value in self._values.getlist(name) if isinstance(value, str)]

    def names(self) -> list[str]:
        return list(self._values.keys())

    def required(self, name: str) -> str:
        """The value; error 2 when it is absent or empty."""
        value = self.get(name)
        if not value:
            raise errors.missing_parameter(name)
        return value

    def flag(self, name: str) -> bool:
        """Upstream's boolean parameters: "1"/"true"/"yes"/"on" (any case) mean true."""
        return (self.get(name) or "").strip().lower() in ("1", "true", "yes", "on")

    def uuid(self, name: str) -> uuid.UUID | None:
        """A UUID parameter (error 7 when malformed), None when absent or empty."""
        value = self.get(name)
        return parse_uuid(name, value) if value else None

    def foreign_id(self, name: str) -> str | None:
        """`vendor:id` (error 10 when malformed or longer than `text_limits.FOREIGN_ID`), None
        when absent or empty."""
        value = self.get(name)
        if not value:
            return None
        if not _FOREIGN_ID.match(value):
            raise errors.invalid_foreignid(name)
        if len(value) > text_limits.FOREIGN_ID:
            raise errors.foreignid_too_long(name, text_limits.FOREIGN_ID)
        return value

    def suffixes(self, *bases: str) -> list[int | None]:
        """Indexes of a batch: None for the unsuffixed form (sorted first), then every N of
        `<base>.N` for any of `bases`, ascending."""
        found: set[int] = set()
        unsuffixed = False
        for name in self.names():
            if name in bases:
                unsuffixed = True
                continue
            match = _SUFFIX.match(name)
            if match and match["base"] in bases:
                found.add(int(match["index"]))
        ordered: list[int | None] = [None] if unsuffixed else []
        return ordered + sorted(found)


def suffixed(name: str, index: int | None) -> str:
    return name if index is None else f"{name}.{index}"


def parse_uuid(name: str, value: str) -> uuid.UUID:
    if not _UUID.match(value):
        raise errors.invalid_uuid(name)
    return uuid.UUID(value)


def parse_int(value: str | None) -> int | None:
    """An integer as werkzeug's `type=int` reads it; None when absent or not a number."""
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


async def read_params(request: Request) -> Params:
    """Query string + body parameters. Error 19 when the body or its field count is too large."""
    items = parse_qsl(request.url.query, keep_blank_values=True)
    body = await _read_body(request)
    if body:
        items.extend(await _parse_body(request, body))
    return Params(items)


async def _read_body(request: Request) -> bytes:
    declared = parse_int(request.headers.get("content-length"))
    if declared is not None and declared > MAX_BODY_SIZE:
        raise errors.request_too_large()
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > MAX_BODY_SIZE:
            raise errors.request_too_large()
    return bytes(chunks)


async def _parse_body(request: Request, body: bytes) -> list[tuple[str, str]]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        return await _parse_multipart(request, body)
    if content_type not in ("", "application/x-www-form-urlencoded"):
        # werkzeug ignores bodies of other types; so do we.
        return []
    try:
        return parse_qsl(
            body.decode("utf-8", "replace"),
            keep_blank_values=True,
            max_num_fields=MAX_FORM_FIELDS,
        )
    except ValueError as exc:  # too many fields
        raise errors.request_too_large() from exc


async def _parse_multipart(request: Request, body: bytes) -> list[tuple[str, str]]:
    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(
        request.headers,
        stream(),
        max_files=MAX_FORM_FIELDS,
        max_fields=MAX_FORM_FIELDS,
        max_part_size=MAX_BODY_SIZE,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        if "Too many" in exc.message or "exceeded" in exc.message:
            raise errors.request_too_large() from exc
        raise MalformedBody(exc.message) from exc
    result = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            # Upstream reads files as form values too; a text part is what clients send.
            result.append((name, (await value.read()).decode("utf-8", "replace")))
            await value.close()
        else:
            result.append((name, value))
    return result
