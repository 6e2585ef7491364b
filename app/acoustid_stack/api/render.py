"""Response bodies in the three upstream formats (reference §1.2): json, jsonp and xml.

Handlers return plain dicts/lists; this module alone decides how they look on the wire.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal
from xml.etree import ElementTree as ET  # builds answers, parses nothing  # nosec B405

from starlette.responses import Response

from acoustid_stack.api.errors import ApiError, unknown_format

FormatName = Literal["json", "jsonp", "xml"]

DEFAULT_JSONP_CALLBACK: Final = "jsonAcoustidApi"
_JSONP_CALLBACK = re.compile(r"^[$A-Za-z_][0-9A-Za-z_]*(\.[$A-Za-z_][0-9A-Za-z_]*)*$")
_XML_DECLARATION: Final = '<?xml version="1.0" encoding="UTF-8"?>'
#: What XML 1.0 forbids (its `Char` production). Submitted metadata may hold any of it and
#: is stored as sent (JSON carries it faithfully); in XML one such character would make the
#: answer ill-formed for every client looking up that track, so it becomes U+FFFD.
_NOT_XML_CHAR: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class OutputFormat:
    """How to render a response: the format and, for jsonp, a callback already validated."""

    name: FormatName = "json"
    callback: str = DEFAULT_JSONP_CALLBACK

    @classmethod
    def parse(cls, format_value: str | None, callback: str | None) -> OutputFormat:
        """From the `format` and `jsoncallback` parameters; raises error 1 on an unknown format.

        An invalid callback silently becomes the default one, as upstream does.
        """
        name = format_value or "json"
        if name not in ("json", "jsonp", "xml"):
            raise unknown_format()
        valid = callback is not None and _JSONP_CALLBACK.match(callback) is not None
        return cls(name, callback if valid and callback else DEFAULT_JSONP_CALLBACK)  # type: ignore[arg-type]


JSON_FORMAT: Final = OutputFormat()


def render_ok(data: Mapping[str, Any], output: OutputFormat) -> Response:
    """HTTP 200 with `{"status": "ok", **data}`."""
    return render(200, {"status": "ok", **data}, output)


def render_error(error: ApiError, output: OutputFormat) -> Response:
    """The error envelope with the error's HTTP status."""
    body = {"status": "error", "error": {"code": int(error.code), "message": error.message}}
    return render(error.http_status, body, output)


def render(status: int, body: Mapping[str, Any], output: OutputFormat) -> Response:
    if output.name == "xml":
        return Response(to_xml(body), status, media_type="text/xml; charset=UTF-8")
    text = json.dumps(body, sort_keys=True)
    if output.name == "jsonp":
        return Response(
            f"{output.callback}({text})", status, media_type="application/javascript; charset=UTF-8"
        )
    return Response(text, status, media_type="application/json; charset=UTF-8")


def to_xml(body: Mapping[str, Any]) -> bytes:
    """`<response>` with dict keys sorted as child elements, list items named by singularising
    the parent tag (`releases` → `release`, `-ies` → `-y`) and `@key` entries as attributes."""
    root = ET.Element("response")
    _fill(root, body)
    return (_XML_DECLARATION + ET.tostring(root, encoding="unicode")).encode("utf-8")


def singular(tag: str) -> str:
    if tag.endswith("ies"):
        return tag[:-3] + "y"
    return tag[:-1] if tag.endswith("s") else tag


def _fill(element: ET.Element, value: Any) -> None:
    if isinstance(value, Mapping):
        for key in sorted(value):
            item = value[key]
            if key.startswith("@"):
                element.set(key[1:], _text(item))
            else:
                _fill(ET.SubElement(element, key), item)
    elif isinstance(value, list | tuple):
        name = singular(element.tag)
        for item in value:
            _fill(ET.SubElement(element, name), item)
    elif value is not None:
        element.text = _text(value)


def _text(value: Any) -> str:
    # str() as upstream does: True renders "True", floats keep Python's repr.
    return _NOT_XML_CHAR.sub("\ufffd", value if isinstance(value, str) else str(value))
