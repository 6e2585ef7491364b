"""The wire rules upstream fpindex follows: content negotiation, clamping, named errors."""

from __future__ import annotations

import pytest

from acoustid_stack.index import protocol
from acoustid_stack.index.interfaces import (
    BadRequestError,
    GenerationNotAllowedError,
    InvalidFingerprintIdError,
    UnsupportedMediaTypeError,
)

MSGPACK = protocol.MSGPACK


@pytest.mark.parametrize(
    ("content_type", "as_msgpack"),
    [
        (None, True),
        ("", True),
        (MSGPACK, True),
        ("application/msgpack", True),
        ("Application/MsgPack", True),
        ("application/json", False),
        ("application/json; charset=utf-8", False),
    ],
)
def test_a_body_is_read_as_its_content_type_says_and_messagepack_without_one(
    content_type: str | None, as_msgpack: bool
) -> None:
    assert protocol.body_is_msgpack(content_type) is as_msgpack


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "multipart/form-data"])
def test_other_content_types_are_unsupported(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaTypeError) as caught:
        protocol.body_is_msgpack(content_type)
    assert (caught.value.status, caught.value.name) == (415, "UnsupportedMediaType")


@pytest.mark.parametrize(
    ("accept", "content_type", "has_body", "as_msgpack"),
    [
        (MSGPACK, "application/json", True, True),
        ("application/json", MSGPACK, True, False),
        ("application/json, */*", None, True, False),
        (None, None, True, True),  # mirrors the (MessagePack) body
        ("*/*", None, True, True),
        (None, None, False, False),  # no body: JSON
        (None, "application/json", True, False),
        (None, "text/plain", True, False),  # the 415 itself is answered in JSON
    ],
)
def test_the_answer_takes_the_accepted_format_else_the_requests(
    accept: str | None, content_type: str | None, has_body: bool, as_msgpack: bool
) -> None:
    assert protocol.reply_is_msgpack(accept, content_type, has_body=has_body) is as_msgpack


@pytest.mark.parametrize(
    ("options", "limit", "score_pct", "timeout"),
    [
        ({}, 40, 10, 0.5),
        ({"limit": 0, "score_pct": 0, "timeout": 0}, 1, 0, 0.5),
        ({"limit": 1000, "score_pct": 500, "timeout": 60_000}, 100, 100, 10.0),
        ({"l": 7, "s": 30, "t": 100}, 7, 30, 0.1),
    ],
)
def test_search_options_out_of_range_are_clamped(
    options: dict[str, int], limit: int, score_pct: int, timeout: float
) -> None:
    parsed = protocol.parse_search({"query": [1], **options}).options
    assert (parsed.limit, parsed.score_pct, parsed.timeout) == (limit, score_pct, timeout)


@pytest.mark.parametrize("options", [{"limit": -1}, {"limit": True}, {"score_pct": "5"}])
def test_search_options_that_are_not_unsigned_integers_are_bad_requests(
    options: dict[str, object],
) -> None:
    with pytest.raises(BadRequestError) as caught:
        protocol.parse_search({"query": [1], **options})
    assert caught.value.name == "BadRequest"


def test_create_requests_take_generation_and_the_flag_in_either_spelling() -> None:
    assert protocol.parse_create({}) == protocol.CreateRequest(None, False)
    assert protocol.parse_create({"g": 3, "e": True}) == protocol.CreateRequest(3, True)
    for bad in (0, -2, "3", 2.0, True, 2**64):
        with pytest.raises(GenerationNotAllowedError):
            protocol.parse_create({"generation": bad})
    with pytest.raises(BadRequestError):
        protocol.parse_create({"expect_does_not_exist": "yes"})
    assert protocol.parse_delete({"expect_exists": True}) is True


@pytest.mark.parametrize("value", [0, -1, 2**32, "7", 1.0, True])
def test_a_bad_document_id_is_invalid_fingerprint_id(value: object) -> None:
    with pytest.raises(InvalidFingerprintIdError) as caught:
        protocol.doc_id(value)
    assert (caught.value.status, caught.value.name) == (400, "InvalidFingerprintId")


@pytest.mark.parametrize("text", ["0", "-1", "4294967296", "1.0", "abc", ""])
def test_a_bad_document_id_in_the_path_is_invalid_fingerprint_id(text: str) -> None:
    with pytest.raises(InvalidFingerprintIdError):
        protocol.parse_doc_id(text)
