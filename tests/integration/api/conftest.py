"""Fixtures for api tests: migrated databases, a real index server, keys, and the app."""

from api_support.fixtures import (
    api_env,
    api_settings,
    catalog,
    client,
    index_url,
    keys,
    make_client,
    migrated,
)

__all__ = [
    "api_env",
    "api_settings",
    "catalog",
    "client",
    "index_url",
    "keys",
    "make_client",
    "migrated",
]
