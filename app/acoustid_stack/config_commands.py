"""`acoustid-stack config …`: inspect the effective configuration."""

from __future__ import annotations

import json
from typing import Any

import click

from acoustid_stack.config import settings_from_context
from acoustid_stack.config.dist import render_dist
from acoustid_stack.config.settings import split_dotted


@click.group()
def config() -> None:
    """Inspect the configuration (INI file, ACOUSTID_* env, secret files)."""


@config.command()
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["ini", "json"]),
    default="ini",
    show_default=True,
    help="ini: readable, one key per line with its source; json: for scripts.",
)
@click.pass_context
def check(ctx: click.Context, output_format: str) -> None:
    """Validate the configuration and print every effective value and where it came from.

    Secrets are shown as ***. Exits 1 with one line naming the key and its source when the
    configuration is invalid.
    """
    settings = settings_from_context(ctx)
    config_path = ctx.find_root().obj.get("config_path")
    if output_format == "json":
        keys = {
            dotted: {"value": entry.shown(), "source": entry.source}
            for dotted, entry in settings.effective.items()
        }
        click.echo(json.dumps({"config_file": config_path, "keys": keys}, indent=2))
        return
    click.echo(f"# config file: {config_path or 'none (defaults and environment only)'}")
    section = None
    for dotted, entry in settings.effective.items():
        key_section, name = split_dotted(dotted)
        if key_section != section:
            section = key_section
            click.echo(f"\n[{section}]")
        click.echo(f"{name} = {_ini_text(entry.shown())}  # {entry.source}")


@config.command()
def dist() -> None:
    """Print acoustid.conf.dist: every key with its env variable, default and meaning."""
    click.echo(render_dist(), nl=False)


def _ini_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(
            f"{item[0]}:{item[1]}" if isinstance(item, tuple) else str(item) for item in value
        )
    return str(value)
