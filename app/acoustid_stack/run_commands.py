"""`acoustid-stack run …`: start one long-running process in the foreground.

A thin group: each sub-command loads settings, configures logging and error reporting (api
and web: in each uvicorn worker, `create_app_from_env`) and hands over to the capability's own
`serve` function.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from acoustid_stack.config.context import settings_from_context
from acoustid_stack.logging_setup import configure_logging
from acoustid_stack.sentry_setup import init_sentry
from acoustid_stack.worker.consumer import DEFAULT_BATCH

F = TypeVar("F", bound=Callable[..., object])


@click.group()
def run() -> None:
    """Run one of the services in the foreground."""


@run.command("index")
@click.option(
    "--dir",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("fpindex-data"),
    show_default=True,
    help="Directory holding the indexes (one sub-directory each).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=6081, show_default=True)
@click.option(
    "--create",
    "create",
    multiple=True,
    help="Create this index at start if it does not exist (repeatable).",
)
@click.pass_context
def index(
    ctx: click.Context, data_dir: Path, host: str, port: int, create: tuple[str, ...]
) -> None:
    """Fingerprint index server speaking the fpindex HTTP API."""
    # imported here so `run api` never pays for (or breaks on) the index's imports
    from acoustid_stack.index.server import serve  # noqa: PLC0415

    settings = settings_from_context(ctx)
    configure_logging(settings)
    init_sentry(settings, process="index")
    serve(data_dir, host=host, port=port, create=create)


@run.command("api")
@click.option("--host", default=None, help="Address to listen on.  [default: api.host]")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="[default: api.port]")
@click.option("--workers", type=click.IntRange(1, 256), default=None, help="[default: api.workers]")
@click.pass_context
def api(ctx: click.Context, host: str | None, port: int | None, workers: int | None) -> None:
    """The /v2 API server: uvicorn worker processes, drained on SIGTERM."""
    from acoustid_stack.api.server import serve  # noqa: PLC0415

    settings = settings_from_context(ctx)
    configure_logging(settings)
    config_path = ctx.find_root().obj.get("config_path")
    serve(settings, config_path=config_path, host=host, port=port, workers=workers)


def _metrics_address(host: str, port: int) -> tuple[str, int] | None:
    return (host, port) if port else None


def _health_max_age(default: float) -> Callable[[F], F]:
    return click.option(
        "--health-max-age",
        type=click.FloatRange(1, 86400),
        default=default,
        show_default=True,
        help="Seconds without a turn of the main loop after which /_health (on the metrics "
        "port) answers 503.",
    )


@run.command("cron")
@click.option(
    "--retry-interval",
    type=click.FloatRange(0.1, 60),
    default=5.0,
    show_default=True,
    help="Seconds between a standby's attempts to become leader (and the leader's checks).",
)
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=0, show_default=True)
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
# a job may run for minutes (stats over big tables, pruning in batches): a limit well beyond
# that, so a slow job is never killed halfway and retried forever
@_health_max_age(1800.0)
@click.pass_context
def cron(
    ctx: click.Context,
    *,
    retry_interval: float,
    metrics_port: int,
    metrics_host: str,
    health_max_age: float,
) -> None:
    """Leader-elected periodic jobs; run as many as you like, one is active."""
    from acoustid_stack.cron.service import serve  # noqa: PLC0415

    settings = settings_from_context(ctx)
    configure_logging(settings)
    init_sentry(settings, process="cron")
    serve(
        settings,
        retry_interval=retry_interval,
        metrics_address=_metrics_address(metrics_host, metrics_port),
        health_max_age=health_max_age,
    )


@run.command("worker")
@click.option(
    "--batch",
    type=click.IntRange(1, 1000),
    default=DEFAULT_BATCH,
    show_default=True,
    help="Submissions fetched per round and imported together in one transaction per database.",
)
@click.option(
    "--ack-wait",
    type=click.FloatRange(0.5, 3600),
    default=30.0,
    show_default=True,
    help="Seconds before an unacknowledged message (its worker died) is delivered again; "
    "later redeliveries wait twice as long each time.",
)
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=0, show_default=True)
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
# a fetch returns within 1 s and a batch imports in seconds; an index search or a database
# statement that hangs is what this catches
@_health_max_age(300.0)
@click.pass_context
def worker(
    ctx: click.Context,
    *,
    batch: int,
    ack_wait: float,
    metrics_port: int,
    metrics_host: str,
    health_max_age: float,
) -> None:
    """Import submissions from the JetStream stream; run as many as you like."""
    from acoustid_stack.worker.consumer import ConsumerOptions  # noqa: PLC0415
    from acoustid_stack.worker.service import serve  # noqa: PLC0415

    settings = settings_from_context(ctx)
    configure_logging(settings)
    init_sentry(settings, process="worker")
    serve(
        settings,
        options=ConsumerOptions.with_ack_wait(ack_wait, batch=batch),
        metrics_address=_metrics_address(metrics_host, metrics_port),
        health_max_age=health_max_age,
    )


@run.command("web")
@click.pass_context
def web(ctx: click.Context) -> None:
    """The website: status, statistics, API keys (on `[web] host:port`, default :5001)."""
    from acoustid_stack.web.app import serve  # noqa: PLC0415

    settings = settings_from_context(ctx)
    configure_logging(settings)
    serve(settings, config_path=ctx.find_root().obj.get("config_path"))
