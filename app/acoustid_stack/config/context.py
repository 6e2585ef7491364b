"""Settings for click commands: loaded once per invocation from the root's ``--config``."""

from __future__ import annotations

import click

from acoustid_stack.config.loader import load_settings
from acoustid_stack.config.settings import Settings


def settings_from_context(ctx: click.Context) -> Settings:
    """Settings of this CLI invocation (``--config`` / ACOUSTID_CONFIG + env), cached on ctx.obj.

    Raises ConfigError (a UserError: one line, exit 1) when the configuration is invalid.
    """
    root = ctx.find_root()
    if not isinstance(root.obj, dict):
        root.obj = {}
    settings = root.obj.get("settings")
    if not isinstance(settings, Settings):
        settings = load_settings(root.obj.get("config_path"))
        root.obj["settings"] = settings
    return settings
