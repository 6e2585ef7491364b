"""The fpindex wire format: JSON or MessagePack bodies, validated into typed requests.

MessagePack maps may use the single-letter prefixes of field names, as upstream's
encoder does (`{"q": [...], "l": 10}`); we accept both spellings on input and answer
msgpack with the short keys. Validation is complete before anything is applied: a bad
request changes nothing.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

from acoustid_stack.index.interfaces import (
    MAX_UINT32,
    BadRequestError,
    Change,
    Delete,
    GenerationNotAllowedError,
    Insert,
    InvalidFingerprintIdError,
    MetadataValue,
    SearchOptions,
    UnsupportedMediaTypeError,
)
from acoustid_stack.index.segment import U32

MSGPACK = "application/vnd.msgpack"
JSON = "application/json"
_MSGPACK_TYPES = (MSGPACK, "application/msgpack", "application/x-msgpack")
DEFAULT_LIMIT = 40
MAX_LIMIT = 100
DEFAULT_TIMEOUT_MS = 500
MAX_TIMEOUT_MS = 10000
#: queries of one `_msearch` request (our extension; upstream fpindex has `_search` only)
MAX_QUERIES = 1000


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def is_msgpack(content_type: str | None) -> bool:
    return _media_type(content_type) in _MSGPACK_TYPES


def body_is_msgpack(content_type: str | None) -> bool:
    """How to read a request body, as upstream fpindex does: a body without Content-Type
    is MessagePack; a type other than JSON or MessagePack is refused (415)."""
    media = _media_type(content_type)
    if not media or media in _MSGPACK_TYPES:
        return True
    if media == JSON:
        return False
    raise UnsupportedMediaTypeError(f"Content-Type {media!r}: use {JSON} or {MSGPACK}")


def reply_is_msgpack(accept: str | None, content_type: str | None, *, has_body: bool) -> bool:
    """How to write a response: a JSON or MessagePack `Accept` wins, else the format of the
    request's body; JSON for a request without a body or of an unsupported type."""
    accepted = [_media_type(part) for part in (accept or "").split(",")]
    if any(media in _MSGPACK_TYPES for media in accepted):
        return True
    if JSON in accepted or not has_body:
        return False
    try:
        return body_is_msgpack(content_type)
    except UnsupportedMediaTypeError:
        return False


def decode_body(body: bytes, content_type: str | None) -> dict[str, Any]:
    """The request body as a map; an empty body is an empty map."""
    if not body:
        return {}
    as_msgpack = body_is_msgpack(content_type)
    try:
        data = msgpack.unpackb(body, raw=False) if as_msgpack else json.loads(body)
    except Exception as exc:  # every decoder failure is the client's malformed body
        kind = "MessagePack" if as_msgpack else "JSON"
        raise BadRequestError(f"malformed {kind} body: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequestError("the body must be a map (JSON object)")
    return data


def field(data: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """`data[name]`, or its one-letter msgpack spelling."""
    if name in data:
        return data[name]
    return data.get(name[0], default)


def _int(value: Any, what: str, low: int, high: int) -> int:
    if type(value) is not int:
        raise BadRequestError(f"{what} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise BadRequestError(f"{what} must be between {low} and {high}, got {value}")
    return value


def doc_id(value: Any) -> int:
    try:
        return _int(value, "id", 1, MAX_UINT32)
    except BadRequestError as exc:
        raise InvalidFingerprintIdError(str(exc)) from exc


def parse_doc_id(text: str) -> int:
    if not text.isdigit():
        raise InvalidFingerprintIdError(f"document id must be a positive integer, got {text!r}")
    return doc_id(int(text))


def hashes(value: Any, what: str = "hashes") -> U32:
    return hashes_many([value], what)[0]


def hashes_many(values: list[Any], what: str = "hashes") -> list[U32]:
    """Validate lists of uint32 in one vectorised pass (a batch holds ~10^5 values)."""
    lengths = []
    for value in values:
        if not isinstance(value, list):
            raise BadRequestError(f"{what} must be a list of unsigned 32-bit integers")
        lengths.append(len(value))
    # bool is a subclass of int, and NumPy would turn floats or numeric strings into ints
    if not set(map(type, itertools.chain.from_iterable(values))) <= {int}:
        raise BadRequestError(f"{what} must hold integers only")
    try:
        # straight from the decoded lists, without a flat list of 10^5 ints in between
        array = np.fromiter(
            itertools.chain.from_iterable(values), dtype=np.int64, count=sum(lengths)
        )
    except OverflowError as exc:
        raise BadRequestError(f"{what} must be unsigned 32-bit integers") from exc
    if len(array) and (array.min() < 0 or array.max() > MAX_UINT32):
        raise BadRequestError(f"{what} must be unsigned 32-bit integers (0..{MAX_UINT32})")
    terms: U32 = array.astype(np.uint32)
    # views by slicing: np.split's Python loop took ~4 ms for a batch of 1,000
    ends = itertools.accumulate(lengths)
    return [terms[end - length : end] for length, end in zip(lengths, ends, strict=True)]


@dataclass(frozen=True)
class SearchRequest:
    query: U32
    options: SearchOptions


def parse_search(data: Mapping[str, Any]) -> SearchRequest:
    query = field(data, "query")
    if query is None:
        raise BadRequestError("query is required")
    return SearchRequest(query=hashes(query, "query"), options=_search_options(data))


@dataclass(frozen=True)
class SearchManyRequest:
    queries: list[U32]
    options: SearchOptions  # `timeout` bounds the whole request


def parse_search_many(data: Mapping[str, Any]) -> SearchManyRequest:
    """`{"queries": [[u32], …], …}` with the options of `_search` (our `_msearch`)."""
    queries = data.get("queries")
    if not isinstance(queries, list) or not queries:
        raise BadRequestError("queries must be a non-empty list of queries")
    if len(queries) > MAX_QUERIES:
        raise BadRequestError(f"at most {MAX_QUERIES} queries per request, got {len(queries)}")
    return SearchManyRequest(hashes_many(queries, "queries"), _search_options(data))


def _search_options(data: Mapping[str, Any]) -> SearchOptions:
    timeout = field(data, "timeout", DEFAULT_TIMEOUT_MS)
    if type(timeout) is float and timeout.is_integer():
        timeout = int(timeout)
    min_score = field(data, "min_score")
    # like upstream: out-of-range limit, timeout and score_pct are clamped, not refused;
    # only a value that is not an unsigned integer is a bad request
    limit = _int(field(data, "limit", DEFAULT_LIMIT), "limit", 0, MAX_UINT32)
    timeout_ms = _int(timeout, "timeout", 0, MAX_UINT32) or DEFAULT_TIMEOUT_MS
    return SearchOptions(
        limit=min(max(limit, 1), MAX_LIMIT),
        timeout=min(timeout_ms, MAX_TIMEOUT_MS) / 1000,
        min_score=None if min_score is None else _int(min_score, "min_score", 0, MAX_UINT32),
        score_pct=min(_int(field(data, "score_pct", 10), "score_pct", 0, MAX_UINT32), 100),
    )


@dataclass(frozen=True)
class CreateRequest:
    generation: int | None
    expect_does_not_exist: bool


def parse_create(data: Mapping[str, Any]) -> CreateRequest:
    """`PUT /:index`: `{"expect_does_not_exist"?: bool, "generation"?: u64}`."""
    generation = field(data, "generation")
    if generation is not None and (type(generation) is not int or not 1 <= generation < 2**64):
        raise GenerationNotAllowedError(
            f"generation must be an integer from 1 to 2^64-1, got {generation!r}"
        )
    return CreateRequest(generation, _flag(data, "expect_does_not_exist"))


def parse_delete(data: Mapping[str, Any]) -> bool:
    """`DELETE /:index`: `{"expect_exists"?: bool}`."""
    return _flag(data, "expect_exists")


def _flag(data: Mapping[str, Any], name: str) -> bool:
    value = field(data, name, False)
    if type(value) is not bool:
        raise BadRequestError(f"{name} must be true or false, got {value!r}")
    return value


@dataclass(frozen=True)
class UpdateRequest:
    changes: list[Change]
    metadata: dict[str, MetadataValue] | None
    expected_version: int | None


def _change_parts(item: Any) -> tuple[str, int, Any]:
    if not isinstance(item, dict) or len(item) != 1:
        raise BadRequestError('each change must be {"insert": {...}} or {"delete": {...}}')
    ((kind, body),) = item.items()
    if not isinstance(body, dict):
        raise BadRequestError(f"change {kind!r} must be a map")
    if kind in ("insert", "i"):
        return "insert", doc_id(field(body, "id")), field(body, "hashes")
    if kind in ("delete", "d"):
        return "delete", doc_id(field(body, "id")), None
    raise BadRequestError(f"unknown change {kind!r}; use insert or delete")


def parse_changes(items: list[Any]) -> list[Change]:
    parts = [_change_parts(item) for item in items]
    arrays = iter(hashes_many([raw for kind, _, raw in parts if kind == "insert"]))
    return [
        Insert(doc, next(arrays)) if kind == "insert" else Delete(doc) for kind, doc, _ in parts
    ]


def parse_metadata(value: Any) -> dict[str, MetadataValue] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise BadRequestError("metadata must be a map of names to values")
    for key, item in value.items():
        if item is not None and not isinstance(item, str | int | float | bool):
            raise BadRequestError(f"metadata {key!r} must be a string, number, bool or null")
    return dict(value)


def parse_update(data: Mapping[str, Any]) -> UpdateRequest:
    changes = field(data, "changes")
    if not isinstance(changes, list):
        raise BadRequestError("changes must be a list")
    expected = field(data, "expected_version")
    return UpdateRequest(
        changes=parse_changes(changes),
        metadata=parse_metadata(field(data, "metadata")),
        expected_version=None if expected is None else _int(expected, "expected_version", 0, 2**63),
    )


def shorten(data: Mapping[str, Any]) -> dict[str, Any]:
    """Msgpack rendering of a response, as upstream encodes it: the response's keys and
    those of records in its lists become their first letter; free-form maps (metadata,
    stats) keep their keys."""
    return {
        key[0]: [_short_keys(v) for v in value] if isinstance(value, list) else value
        for key, value in data.items()
    }


def _short_keys(value: Any) -> Any:
    if isinstance(value, list):  # `_msearch`: one list of records per query
        return [_short_keys(v) for v in value]
    return {k[0]: v for k, v in value.items()} if isinstance(value, dict) else value


def encode(data: Mapping[str, Any], *, as_msgpack: bool) -> bytes:
    if as_msgpack:
        packed: bytes = msgpack.packb(shorten(data))
        return packed
    return json.dumps(data, separators=(",", ":")).encode()


def expand(data: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """Client side: a response map with long keys, whichever spelling the server used."""
    return {name: field(data, name) for name in names}
