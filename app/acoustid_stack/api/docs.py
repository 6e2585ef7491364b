"""The api's own pages: a start page at `/` and `/v2/` (what this is, the endpoints, a lookup
to copy) and a reference at `/v2/docs`, both rendered on the server from the OpenAPI
document, so they list exactly what `/v2/openapi.json` describes and need no network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from acoustid_stack.api.openapi import Json, openapi_document

#: what the pages call the key of an application; `acoustid-stack up` prints one
CLIENT_KEY_PLACEHOLDER: Final = "YOUR_CLIENT_KEY"

_TEMPLATES: Final = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def anchor(path: str) -> str:
    """The fragment naming an endpoint in the reference: `/v2/track/list_by_mbid` →
    `track-list_by_mbid`."""
    return path.removeprefix("/v2/").replace("/", "-")


def schema_text(schema: Json) -> str:
    """A parameter's type as a person reads it: `integer 1..30`, `uuid, repeated`, `0 | 1`."""
    if "enum" in schema:
        return " | ".join(str(value) for value in schema["enum"])
    if schema.get("type") == "array":
        return f"{schema_text(schema['items'])}, repeated"
    text = str(schema.get("format", schema.get("type", "")))
    if "minimum" in schema or "maximum" in schema:
        text += f" {schema.get('minimum', '')}..{schema.get('maximum', '')}"
    if "maxLength" in schema:
        text += f", at most {schema['maxLength']} characters"
    return text


def endpoints(document: Json) -> list[dict[str, Any]]:
    """Per path of the document: its anchor, summary, description, parameters, responses."""
    found = []
    for path, item in document["paths"].items():
        operation = item["get"]
        found.append(
            {
                "path": path,
                "anchor": anchor(path),
                "summary": operation["summary"],
                "description": operation["description"],
                "parameters": [
                    {
                        "name": parameter["name"],
                        "required": parameter["required"],
                        "type": schema_text(parameter["schema"]),
                        "description": parameter["description"],
                    }
                    for parameter in operation["parameters"]
                ],
                "responses": operation["responses"],
            }
        )
    return found


def _page(request: Request, template: str) -> HTMLResponse:
    document = openapi_document()
    html = _TEMPLATES.get_template(template).render(
        info=document["info"],
        endpoints=endpoints(document),
        base_url=str(request.base_url).rstrip("/"),
        client_key=CLIENT_KEY_PLACEHOLDER,
    )
    return HTMLResponse(html)


async def start(request: Request) -> HTMLResponse:
    return _page(request, "start.html")


async def reference(request: Request) -> HTMLResponse:
    return _page(request, "reference.html")
