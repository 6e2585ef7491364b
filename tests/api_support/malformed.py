"""Generated malformed API requests (hypothesis) and a fingerprint of database contents.

Requests are drawn from the parameters `/v2/openapi.json` declares for each path, with
hostile values (unicode, control characters, huge numbers, corrupted and over-long
fingerprints, corrupted and newline-suffixed UUIDs, repeated and suffixed names, 4,400-digit
suffixes), sent as a query string or as a urlencoded, multipart, gzip (valid or not) or
oddly typed body, with any method (PUT, DELETE, PATCH: 405). Requests to endpoints that write
(`/v2/submit`, `/v2/user/create_anonymous`) always carry one guaranteed error, so a run
must leave the databases exactly as they were.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import numpy as np
import psycopg
from hypothesis import strategies as st

from acoustid_stack.api.fingerprint_param import MAX_FINGERPRINT_HASHES
from acoustid_stack.api.openapi import openapi_document
from acoustid_stack.config import Settings
from acoustid_stack.fingerprint import encode_fingerprint

WRITING_PATHS = frozenset({"/v2/submit", "/v2/user/create_anonymous"})
#: A batch index the generator never draws: the poison item of a submit lives there.
POISON_INDEX = 1_000_000_007
#: More digits than int() reads (4300): once a 500.
HUGE_INDEX = "9" * 4400
#: A header announcing one hash over the limit, nothing after it: refused from the header
#: alone, and short enough for a query string (httpx refuses URLs over 64 KiB).
OVER_LONG_FINGERPRINT = (
    base64.urlsafe_b64encode(bytes([1]) + (MAX_FINGERPRINT_HASHES + 1).to_bytes(3, "big"))
    .decode()
    .rstrip("=")
)
OTHER_PATHS = ("/lookup", "/submit", "/v2/lookup/", "//v2//lookup", "/v2/nope", "/v2")
METHODS = ("GET", "POST", "POST", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")


@dataclass(frozen=True)
class Credentials:
    client: str
    user: str


@dataclass(frozen=True)
class MalformedRequest:
    method: str
    path: str
    query: str
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path


def declared_parameters() -> dict[str, list[str]]:
    """path → names of the parameters the OpenAPI document declares for it."""
    document = openapi_document()
    result: dict[str, list[str]] = {}
    for path, item in document["paths"].items():
        names = {
            parameter["name"]
            for operation in item.values()
            if isinstance(operation, dict)
            for parameter in operation.get("parameters", [])
        }
        result[path] = sorted(names)
    return result


_SPECIAL = st.sampled_from(
    [
        "",
        " ",
        "0",
        "-1",
        "1e309",
        "NaN",
        "null",
        "\x00",
        "%",
        "%zz",
        "０",
        "٣",
        "9" * 40,
        "-" + "9" * 40,
        "true",
        "1.5",
        "' OR 1=1 --",
        "<x/>",
        "a" * 5000,
    ]
)


def _corrupted_fingerprint(data: st.DataObject) -> str:
    size = data.draw(st.integers(0, 300))
    seed = data.draw(st.integers(0, 2**32 - 1))
    hashes = np.random.default_rng(seed).integers(0, 2**32, size, dtype=np.uint64)
    text = encode_fingerprint(hashes.astype(np.uint32)) if size else ""
    how = data.draw(st.sampled_from(["truncate", "flip", "pad", "garbage", "over long", "as is"]))
    if how == "over long":
        return OVER_LONG_FINGERPRINT
    if how == "truncate" and text:
        return text[: data.draw(st.integers(0, len(text) - 1))]
    if how == "flip" and text:
        at = data.draw(st.integers(0, len(text) - 1))
        return text[:at] + data.draw(st.sampled_from("A_-+/=!é")) + text[at + 1 :]
    if how == "pad":
        return text + "=" * data.draw(st.integers(1, 5))
    if how == "garbage":
        return data.draw(st.text(alphabet="AQgw-_+/=", max_size=200))
    return text


def _uuidish(data: st.DataObject) -> str:
    text = str(uuid.UUID(int=data.draw(st.integers(0, 2**128 - 1))))
    how = data.draw(st.sampled_from(["upper", "braces", "bare", "swap", "newline", "as is"]))
    if how == "newline":  # `$` matches before it: once a 500
        return text + "\n"
    if how == "upper":
        return text.upper()
    if how == "braces":
        return "{" + text + "}"
    if how == "bare":
        return text.replace("-", "")
    if how == "swap":
        at = data.draw(st.integers(0, len(text) - 1))
        return text[:at] + data.draw(st.sampled_from("g-Z é")) + text[at + 1 :]
    return text


def hostile_value(data: st.DataObject, name: str) -> str:
    base = name.split(".", maxsplit=1)[0]
    kind = data.draw(st.integers(0, 9))
    if base == "fingerprint" and kind < 5:
        return _corrupted_fingerprint(data)
    if base in ("trackid", "mbid", "puid") and kind < 5:
        return _uuidish(data)
    if kind < 3:
        return data.draw(_SPECIAL)
    if kind < 5:
        return str(data.draw(st.integers(-(2**70), 2**70)))
    if kind < 6:
        return data.draw(st.binary(max_size=40)).decode("latin-1")
    return data.draw(st.text(max_size=40))


def _name(data: st.DataObject, declared: list[str]) -> str:
    kind = data.draw(st.integers(0, 9))
    if kind < 6 and declared:
        return data.draw(st.sampled_from(declared))
    if kind < 8:
        base = data.draw(st.sampled_from(["fingerprint", "duration", "trackid", "mbid", "track"]))
        index = data.draw(
            st.one_of(
                st.integers(0, 30).map(str),
                st.integers(0, 10**30).map(str),
                st.just(HUGE_INDEX),
            )
        )
        return f"{base}.{index}" if index != str(POISON_INDEX) else base
    return data.draw(st.text(max_size=12))


def _key(data: st.DataObject, valid: str) -> str | None:
    kind = data.draw(st.integers(0, 3))
    if kind == 0:
        return None
    if kind == 1:
        return "bad-" + data.draw(st.text(max_size=12))
    return valid


@st.composite
def malformed_requests(draw: st.DrawFn, keys: Credentials) -> MalformedRequest:
    data = draw(st.data())
    declared = declared_parameters()
    paths = sorted(declared)
    path = draw(st.one_of(st.sampled_from(paths), st.sampled_from(OTHER_PATHS)))
    names = declared.get(path, [])
    params: list[tuple[str, str]] = []
    for credential, valid in (("client", keys.client), ("user", keys.user)):
        value = _key(data, valid)
        if value is not None:
            params.append((credential, value))
    for _ in range(draw(st.integers(0, 8))):
        name = _name(data, names)
        params.append((name, hostile_value(data, name)))
    if path == "/v2/submit":
        # an item that can never be valid: the whole submit must be refused
        params += [(f"fingerprint.{POISON_INDEX}", "x"), (f"duration.{POISON_INDEX}", "-1")]
    if path == "/v2/user/create_anonymous":
        params = [(n, v) for n, v in params if n != "client" or v != keys.client]
    return _encoded(data, draw(st.sampled_from(METHODS)), path, params)


def _urlencoded(params: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(n, safe='')}={quote(v, safe='')}" for n, v in params)


def _encoded(
    data: st.DataObject, method: str, path: str, params: list[tuple[str, str]]
) -> MalformedRequest:
    how = data.draw(st.sampled_from(["query", "form", "gzip", "bad gzip", "multipart", "other"]))
    if method == "GET" or how == "query":
        return MalformedRequest(method, path, _urlencoded(params))
    split = data.draw(st.integers(0, len(params)))
    query, body_params = _urlencoded(params[:split]), params[split:]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    if how == "form":
        return MalformedRequest(method, path, query, _urlencoded(body_params).encode(), form)
    if how == "gzip":
        body = gzip.compress(_urlencoded(body_params).encode())
        return MalformedRequest(method, path, query, body, {**form, "Content-Encoding": "gzip"})
    if how == "bad gzip":
        body = data.draw(st.binary(max_size=200))
        return MalformedRequest(method, path, query, body, {**form, "Content-Encoding": "gzip"})
    if how == "multipart":
        boundary = "fuzzboundary"
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{n}"\r\n\r\n{v}\r\n'
            for n, v in body_params
        ]
        cut = data.draw(st.booleans())  # a truncated body is malformed multipart
        body = ("".join(parts) + ("" if cut else f"--{boundary}--\r\n")).encode(
            "utf-8", "surrogateescape"
        )
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        return MalformedRequest(method, path, query, body, headers)
    content_type = data.draw(st.sampled_from(["application/json", "text/plain", "", "x/y; z"]))
    body = data.draw(st.binary(max_size=300))
    return MalformedRequest(method, path, query, body, {"Content-Type": content_type})


def database_contents(settings: Settings) -> dict[str, tuple[int, str]]:
    """`database.table` → (row count, md5 of every row's text, ordered) for all three
    databases: equal before and after means nothing was written."""
    result: dict[str, tuple[int, str]] = {}
    for name in ("app", "fingerprint", "ingest"):
        target: Any = getattr(settings.database, name)
        with psycopg.connect(target.conninfo(), autocommit=True) as conn:
            tables = [
                row[0]
                for row in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
                )
            ]
            for table in tables:
                rows = conn.execute(f'SELECT t::text FROM "{table}" t ORDER BY 1').fetchall()
                digest = hashlib.md5(
                    "\n".join(row[0] for row in rows).encode(), usedforsecurity=False
                )
                result[f"{name}.{table}"] = (len(rows), digest.hexdigest())
    return result
