"""The OpenAPI 3.1 document of the v2 API, served at `/v2/openapi.json`.

Built from one table of routes and parameters. Every endpoint takes its parameters from the
query string or an urlencoded/multipart form body (optionally gzip-encoded), answers in
json (default), jsonp or xml (`format`), and wraps errors in the numbered envelope.
Batch parameters with a numeric suffix (`fingerprint.0`, `duration.0`, …) are described in
the text: OpenAPI cannot name a family of parameters.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse

from acoustid_stack import __version__
from acoustid_stack.api.errors import ErrorCode
from acoustid_stack.api.fingerprint_param import MAX_FINGERPRINT_HASHES
from acoustid_stack.api.lookup_meta import META_VALUES
from acoustid_stack.db import text_limits

Json = dict[str, Any]

_STRING: Final[Json] = {"type": "string"}
_INTEGER: Final[Json] = {"type": "integer"}
_UUID: Final[Json] = {"type": "string", "format": "uuid"}
_FLAG: Final[Json] = {"type": "string", "enum": ["0", "1"]}

# name → (schema, meaning)
_PARAMETERS: Final[dict[str, tuple[Json, str]]] = {
    "client": (_STRING, "Application API key."),
    "clientversion": (
        _STRING,
        f"Application version; its first {text_limits.CLIENT_VERSION} characters are stored.",
    ),
    "user": (_STRING, "User API key."),
    "format": ({"type": "string", "enum": ["json", "jsonp", "xml"]}, "Response format."),
    "jsoncallback": (_STRING, "JSONP callback name (format=jsonp)."),
    "fingerprint": (
        _STRING,
        "Compressed base64 fingerprint (fpcalc output), at most "
        f"{MAX_FINGERPRINT_HASHES:,} hashes (about 2 hours of audio; longer: error 3).",
    ),
    "duration": (_INTEGER, "Audio duration in seconds."),
    "trackid": (_UUID, "AcoustID track id, instead of fingerprint and duration."),
    "meta": (
        _STRING,
        f"Space-separated, any of: {' '.join(sorted(META_VALUES))}; 0 = none, "
        "1 = recordingids, 2 = recordings releasegroups compress. `tracks` adds to each release "
        "its mediums with the matched track (position, title, artists); keys the metadata "
        "does not know are left out.",
    ),
    "maxdurationdiff": (
        {"type": "integer", "minimum": 1, "maximum": 30},
        "Largest accepted difference between the query and a match duration, seconds.",
    ),
    "batch": (_FLAG, "1: read suffixed parameters (fingerprint.N, duration.N, trackid.N)."),
    "wait": (_INTEGER, "Ignored (accepted for compatibility)."),
    "bitrate": (_INTEGER, "Bitrate of the audio file."),
    "fileformat": (
        _STRING,
        f"Audio file format; its first {text_limits.FILE_FORMAT} characters are stored.",
    ),
    "mbid": ({"type": "array", "items": _UUID}, "MusicBrainz recording id(s)."),
    "puid": (_UUID, "MusicIP PUID."),
    "foreignid": (
        {"type": "string", "maxLength": text_limits.FOREIGN_ID},
        "Foreign id as vendor:id.",
    ),
    "track": (_STRING, "Track title."),
    "artist": (_STRING, "Track artist."),
    "album": (_STRING, "Album title."),
    "albumartist": (_STRING, "Album artist."),
    "trackno": (_INTEGER, "Track number."),
    "discno": (_INTEGER, "Disc number."),
    "year": (_INTEGER, "Release year."),
    "id": (_INTEGER, "Numeric id."),
    "disabled": (_FLAG, "1: also list disabled links, flagged disabled=true."),
    "access_token": (_STRING, "MusicBrainz OAuth2 access token."),
    # `id` repeated (submission_status); the key differs only so the table can hold both
    "ids": ({"type": "array", "items": _INTEGER}, "Submission ids."),
}

_COMMON: Final = ("format", "jsoncallback")

# path → (summary, description, required parameters, optional parameters)
ROUTES: Final[dict[str, tuple[str, str, tuple[str, ...], tuple[str, ...]]]] = {
    "/v2/lookup": (
        "Look up fingerprints or track ids",
        "Single query, or batch=1 with suffixed fingerprint.N/duration.N/trackid.N "
        "(≤ 20 fingerprints, ≤ 100 track ids).",
        ("client",),
        (
            "clientversion",
            "fingerprint",
            "duration",
            "trackid",
            "meta",
            "maxdurationdiff",
            "batch",
        ),
    ),
    "/v2/submit": (
        "Submit fingerprints",
        "One or more submissions: unsuffixed and/or suffixed (fingerprint.N, duration.N, "
        "mbid.N, …). Stored before the answer; imported asynchronously.",
        ("client", "user", "fingerprint", "duration"),
        (
            "clientversion",
            "wait",
            "bitrate",
            "fileformat",
            "mbid",
            "puid",
            "foreignid",
            "track",
            "artist",
            "album",
            "albumartist",
            "trackno",
            "discno",
            "year",
        ),
    ),
    "/v2/submission_status": (
        "Status of submissions",
        "Repeat `id` for several submissions.",
        ("client",),
        ("ids",),
    ),
    "/v2/track/list_by_mbid": (
        "Tracks linked to MusicBrainz recordings",
        "Repeat `mbid`; with batch=1 every mbid is answered.",
        ("mbid",),
        ("batch", "disabled"),
    ),
    "/v2/track/list_by_puid": ("Tracks linked to a PUID", "Always empty.", ("puid",), ()),
    "/v2/fingerprint": ("A stored fingerprint", "Hashes and duration by id.", ("id",), ()),
    "/v2/user/lookup": ("The API key of a user", "", ("user",), ()),
    "/v2/user/create_anonymous": (
        "Create an anonymous user",
        "",
        ("client",),
        ("clientversion",),
    ),
    "/v2/user/create_musicbrainz": (
        "The API key of a MusicBrainz user",
        "HTTPS only (error 16). The token is verified with musicbrainz.org (error 15 when it "
        "cannot be); this deployment cannot reach it, so every token is refused.",
        ("access_token",),
        (),
    ),
}


def openapi_document() -> Json:
    """The whole document (a new dict on each call)."""
    paths = {path: _path_item(*route) for path, route in ROUTES.items()}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "AcoustID API",
            "version": f"2 (acoustid-stack {__version__})",
            "description": "Compatible with the AcoustID web service API v2.",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Ok": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {"status": {"const": "ok"}},
                    "additionalProperties": True,
                },
                "Error": {
                    "type": "object",
                    "required": ["status", "error"],
                    "properties": {
                        "status": {"const": "error"},
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "integer", "enum": [int(c) for c in ErrorCode]},
                                "message": {"type": "string"},
                            },
                        },
                    },
                },
            }
        },
    }


async def endpoint(request: Request) -> JSONResponse:
    return JSONResponse(openapi_document())


def _path_item(
    summary: str, description: str, required: tuple[str, ...], optional: tuple[str, ...]
) -> Json:
    names = (*required, *optional, *_COMMON)
    parameters = [_query_parameter(name, name in required) for name in names]
    form = {
        "type": "object",
        "properties": {_wire_name(name): _PARAMETERS[name][0] for name in names},
        "required": [_wire_name(name) for name in required],
    }
    responses = {
        "200": _response("Success", "Ok"),
        "400": _response("Invalid parameters (error codes 1–4, 6–12, 15–17)", "Error"),
        "404": _response("Not found (error 18)", "Error"),
        "413": _response("Request too large (error 19)", "Error"),
        "429": _response("Rate limit exceeded (error 14)", "Error"),
        "500": _response("Internal error (error 5)", "Error"),
        "503": _response("Service unavailable (error 13)", "Error"),
    }
    operation = {"summary": summary, "description": description, "responses": responses}
    return {
        "get": {
            **operation,
            "operationId": _operation_id("get", summary),
            "parameters": parameters,
        },
        "post": {
            **operation,
            "operationId": _operation_id("post", summary),
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {"schema": form},
                    "multipart/form-data": {"schema": form},
                },
            },
        },
    }


def _wire_name(name: str) -> str:
    return "id" if name == "ids" else name


def _query_parameter(name: str, required: bool) -> Json:
    schema, meaning = _PARAMETERS[name]
    parameter: Json = {
        "name": _wire_name(name),
        "in": "query",
        "required": required,
        "description": meaning,
        "schema": schema,
    }
    if schema.get("type") == "array":
        parameter |= {"style": "form", "explode": True}
    return parameter


def _response(description: str, schema: str) -> Json:
    reference = {"$ref": f"#/components/schemas/{schema}"}
    return {
        "description": description,
        "content": {
            "application/json": {"schema": reference},
            "text/xml": {"schema": {"type": "string"}},
            "application/javascript": {"schema": {"type": "string"}},
        },
    }


def _operation_id(method: str, summary: str) -> str:
    words = "".join(ch if ch.isalnum() else " " for ch in summary).split()
    return method + "".join(word.capitalize() for word in words)
