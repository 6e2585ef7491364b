"""The pages: status (/), statistics (/stats), API key (/apikey), health (/_health)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from acoustid_stack.cron.jobs import JOBS
from acoustid_stack.web import statistics
from acoustid_stack.web.apikeys import (
    InvalidApplication,
    NewApplication,
    creation_allowed,
    register_application,
)
from acoustid_stack.web.chart import bar_chart
from acoustid_stack.web.forms import FormRefused, check_same_origin, small_form


def _every(delta: timedelta) -> str:
    """How often cron runs a job, as the pages explain their lag: `every minute`."""
    named = {timedelta(minutes=1): "every minute", timedelta(hours=1): "every hour"}
    return named.get(delta, f"every {delta.total_seconds():g} seconds")


_CRON_EVERY = {job.name: _every(job.every) for job in JOBS}


def _state(request: Request) -> Any:
    return request.app.state


def _render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    templates: Jinja2Templates = _state(request).templates
    return templates.TemplateResponse(request, template, context, status_code=status_code)


async def home(request: Request) -> Response:
    state = _state(request)
    health, counts = await state.status_figures.get()
    context = {
        "health": health,
        "counts": counts,
        "cache_seconds": f"{state.settings.web.status_cache_seconds:g}",
        "lookups_every": _CRON_EVERY["flush_lookup_stats"],
    }
    return _render(request, "home.html", context)


async def stats(request: Request) -> Response:
    state = _state(request)
    names, days = await statistics.daily_stats(state.databases.app)
    hours = await statistics.hourly_activity(state.databases)
    charts = [
        hourly_chart("lookups", hours, [hour.lookups for hour in hours]),
        hourly_chart("submissions", hours, [hour.submissions for hour in hours]),
    ]
    context = {
        "counters": [(name, statistics.counter_label(name)) for name in names],
        "days": days,
        "hours": hours,
        "charts": charts,
        "counters_every": _CRON_EVERY["update_stats"],
        "lookups_every": _CRON_EVERY["flush_lookup_stats"],
    }
    return _render(request, "stats.html", context)


def hourly_chart(
    name: str, hours: list[statistics.Hour], values: list[int | None]
) -> dict[str, Any]:
    """The chart of one figure per hour, or why there is none (unknown, or all zero)."""
    chart: dict[str, Any] = {"title": name.capitalize()}
    if any(value is None for value in values):
        chart["missing"] = "Unknown: the database did not answer in time."
    elif not any(values):
        chart["missing"] = f"No {name} in these hours."
    else:
        span = f"{hours[0].start:%Y-%m-%d %H:00} to {hours[-1].start:%Y-%m-%d %H:00} UTC"
        chart["svg"] = bar_chart(
            chart_id=f"{name}-chart",
            title=f"{name.capitalize()} per hour",
            description=f"{name.capitalize()} per hour from {span}; the table below has the "
            "numbers.",
            bars=[
                (f"{hour.start:%H}:00", value or 0)
                for hour, value in zip(hours, values, strict=True)
            ],
        )
    return chart


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
