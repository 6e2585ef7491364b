"""`acoustid-stack run …`: start one long-running process in the foreground.

A thin group: each sub-command loads settings, configures logging and hands over to
the capability's own `serve` function.
"""

from __future__ import annotations

from pathlib import Path

import click

from acoustid_stack.config.context import settings_from_context
from acoustid_stack.logging_setup import configure_logging


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

    configure_logging(settings_from_context(ctx))
    serve(data_dir, host=host, port=port, create=create)
