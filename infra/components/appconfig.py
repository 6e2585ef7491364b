"""Defaults of the app's own configuration table, so infrastructure names match what the app
expects without repeating them (database names, user, Sentinel master name)."""

from __future__ import annotations

from acoustid_stack.config.table import KEYS


def app_default(section: str, name: str) -> str:
    """The literal default of ``[section] name`` in the app's config table."""
    for key in KEYS:
        if key.section == section and key.name == name and isinstance(key.default, str):
            return key.default
    raise LookupError(f"{section}.{name} has no literal default in the config table")
