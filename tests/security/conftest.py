"""Security regressions (issue 17) run against the real api app and its real services."""

from api_support.fixtures import (
    api_env,
    api_settings,
    catalog,
    client,
    index_url,
    keys,
    migrated,
)

__all__ = [
    "api_env",
    "api_settings",
    "catalog",
    "client",
    "index_url",
    "keys",
    "migrated",
]
