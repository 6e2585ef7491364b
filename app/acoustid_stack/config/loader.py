"""``load_settings``: sources -> typed, validated, immutable ``Settings``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from acoustid_stack.config.errors import ConfigError
from acoustid_stack.config.settings import (
    ApiSettings,
    ClusterSettings,
    DatabaseSettings,
    DatabasesSettings,
    Effective,
    IndexSettings,
    LoggingSettings,
    NatsSettings,
    RateLimitSettings,
    RedisSettings,
    SentrySettings,
    Settings,
    WebSettings,
    WebsiteSettings,
)
from acoustid_stack.config.sources import Layer, RawValue, RawValues, collect
from acoustid_stack.config.table import (
    DATABASES,
    INHERIT,
    KEYS,
    PATTERN_KEYS,
    Key,
    keys_of,
    parent_section,
)
from acoustid_stack.config.values import ValueType

CONFIG_ENV = "ACOUSTID_CONFIG"


def load_settings(path: str | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from defaults, the INI file, ACOUSTID_* variables and secret files.

    ``path`` None -> ``environ["ACOUSTID_CONFIG"]``; neither -> no file, defaults and env only.
    ``environ`` None -> ``os.environ``. Raises ConfigError naming the key and its source.
    """
    environ = os.environ if environ is None else environ
    path = path or environ.get(CONFIG_ENV) or None
    effective = resolve(collect(path, environ))
    return _build(effective)


def resolve(raw: RawValues) -> dict[str, Effective]:
    """Every key's typed value and source, in table order (pattern keys after their section)."""
    effective: dict[str, Effective] = {}
    for key in KEYS:
        value = raw.get((key.section, key.name))
        if value is not None:
            parsed = _parse(key.dotted, key.type, value, secret=key.secret, default=key.default)
            effective[key.dotted] = Effective(parsed, value.source, key.secret)
        elif key.default is INHERIT:
            inherited = effective[f"{parent_section(key.section)}.{key.name}"]
            source = inherited.source
            if not source.startswith("inherited"):
                source = f"inherited from {parent_section(key.section)}.{key.name}: {source}"
            effective[key.dotted] = Effective(inherited.value, source, key.secret)
        else:
            default = RawValue(str(key.default or ""), "default", Layer.DEFAULT)
            parsed = _parse(key.dotted, key.type, default, secret=False, default=key.default)
            effective[key.dotted] = Effective(parsed, "default", key.secret)
    for (section, name), value in sorted(raw.items()):
        pattern = next(
            (p for p in PATTERN_KEYS if p.section == section and name.startswith(p.prefix + ".")),
            None,
        )
        if pattern is not None:
            dotted = f"{section}.{name}"
            parsed = _parse(dotted, pattern.type, value, secret=False, default=None)
            effective[dotted] = Effective(parsed, value.source, False)
    _check_cluster(effective)
    return effective


def _parse(
    dotted: str, value_type: ValueType, raw: RawValue, *, secret: bool, default: object
) -> Any:
    text = raw.text.strip()
    if not text:
        if default is None:
            return None
        if default == "":
            return value_type.parse("")
        raise ConfigError(
            f"{dotted}: value is empty (from {raw.source}); set a value or remove the line"
        )
    try:
        return value_type.parse(text)
    except ValueError as exc:
        shown = "the secret value" if secret else repr(text)
        raise ConfigError(f"{dotted}: {shown} {exc} (from {raw.source})") from None


def _check_cluster(effective: Mapping[str, Effective]) -> None:
    if effective["cluster.role"].value != "slave":
        return
    for name in ("base_master_url", "secret"):
        if effective[f"cluster.{name}"].value is None:
            raise ConfigError(
                f"cluster.{name} is missing and has no default; a slave needs it "
                f"(cluster.role is slave from {effective['cluster.role'].source}; "
                f"set {_key(f'cluster.{name}').env})"
            )


def _build(effective: Mapping[str, Effective]) -> Settings:
    def section(cls: type[Any], name: str, **extra: Any) -> Any:
        fields = {key.attribute: effective[key.dotted].value for key in keys_of(name)}
        return cls(**fields, **extra)

    databases = {db: section(DatabaseSettings, f"database.{db}") for db in DATABASES}
    databases |= {f"{db}_ro": section(DatabaseSettings, f"database.{db}.ro") for db in DATABASES}
    return Settings(
        database=DatabasesSettings(**databases),
        redis=section(RedisSettings, "redis"),
        nats=section(NatsSettings, "nats"),
        index=section(IndexSettings, "index"),
        website=section(WebsiteSettings, "website"),
        rate_limit=section(
            RateLimitSettings,
            "rate_limit",
            ip_overrides=_patterns(effective, "rate_limit.ip."),
            application_overrides=MappingProxyType(
                {int(k): v for k, v in _patterns(effective, "rate_limit.application.").items()}
            ),
        ),
        logging=section(LoggingSettings, "logging", levels=_patterns(effective, "logging.level.")),
        sentry=section(SentrySettings, "sentry"),
        cluster=section(ClusterSettings, "cluster"),
        api=section(ApiSettings, "api"),
        web=section(WebSettings, "web"),
        effective=MappingProxyType(dict(effective)),
    )


def _patterns(effective: Mapping[str, Effective], prefix: str) -> Mapping[str, Any]:
    return MappingProxyType(
        {
            dotted.removeprefix(prefix): entry.value
            for dotted, entry in effective.items()
            if dotted.startswith(prefix)
        }
    )


def _key(dotted: str) -> Key:
    return next(key for key in KEYS if key.dotted == dotted)
