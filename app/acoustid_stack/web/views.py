"""The pages: status (/), statistics (/stats), API key (/apikey), health (/_health)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from acoustid_stack.web import status
from acoustid_stack.web.apikeys import (
    InvalidApplication,
    NewApplication,
    creation_allowed,
    register_application,
)
from acoustid_stack.web.forms import FormRefused, check_same_origin, small_form


def _state(request: Request) -> Any:
    return request.app.state


def _render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    templates: Jinja2Templates = _state(request).templates
    return templates.TemplateResponse(request, template, context, status_code=status_code)


async def home(request: Request) -> Response:
    health, counts = await _state(request).status_figures.get()
    return _render(request, "home.html", {"health": health, "counts": counts})


async def stats(request: Request) -> Response:
    state = _state(request)
    names, days = await status.daily_stats(state.databases.app)
    hours = await status.hourly_lookups(state.databases.app)
    return _render(request, "stats.html", {"names": names, "days": days, "hours": hours})


async def apikey(request: Request) -> Response:
    state = _state(request)
    if request.method == "GET":
        return _render(request, "apikey.html", {"form": {}})
    try:
        check_same_origin(request, state.settings.website.base_url)
        form = await small_form(request)
    except FormRefused as exc:
        return _render(request, "apikey.html", {"form": {}, "error": str(exc)}, exc.status)
    try:
        new = NewApplication.from_form(form)
    except InvalidApplication as exc:
        return _render(request, "apikey.html", {"form": form, "error": str(exc)}, 400)
    # behind [web] trusted_proxies (the chart's ingress) the forwarded client, else the peer:
    # X-Forwarded-For from anyone else is the client's own text and would skip the limit
    allowed = await creation_allowed(
        state.redis,
        key_prefix=state.settings.redis.key_prefix,
        client_ip=state.proxies.client_of(request),
        per_hour=state.settings.web.apikeys_per_hour,
    )
    if not allowed:
        error = "Too many API keys were created from your address; try again in an hour."
        return _render(request, "apikey.html", {"form": form, "error": error}, 429)
    key = await register_application(state.databases.app, new)
    return _render(request, "apikey.html", {"form": {}, "created": new, "apikey": key}, 201)


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


routes = [
    Route("/", home),
    Route("/stats", stats),
    Route("/apikey", apikey, methods=["GET", "POST"]),
    Route("/_health", health),
]
