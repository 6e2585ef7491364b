"""Typed settings: INI file + ACOUSTID_* env + ``<key>_file`` secrets (DESIGN.md §5).

The key table lives in ``table.py``; everything else (loading, env names, masking,
`config check`, acoustid.conf.dist) derives from it.
"""

from acoustid_stack.config.context import settings_from_context
from acoustid_stack.config.errors import ConfigError
from acoustid_stack.config.loader import load_settings
from acoustid_stack.config.settings import (
    ApiSettings,
    ClusterSettings,
    DatabaseName,
    DatabaseSettings,
    DatabasesSettings,
    IndexSettings,
    LoggingSettings,
    NatsSettings,
    RateLimitSettings,
    RedisSettings,
    SentrySettings,
    ServerSettings,
    Settings,
    WebsiteSettings,
)

__all__ = [
    "ApiSettings",
    "ClusterSettings",
    "ConfigError",
    "DatabaseName",
    "DatabaseSettings",
    "DatabasesSettings",
    "IndexSettings",
    "LoggingSettings",
    "NatsSettings",
    "RateLimitSettings",
    "RedisSettings",
    "SentrySettings",
    "ServerSettings",
    "Settings",
    "WebsiteSettings",
    "load_settings",
    "settings_from_context",
]
