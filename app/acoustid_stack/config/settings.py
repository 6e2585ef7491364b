"""Immutable typed settings. Built by ``load_settings``; field names are the table's key names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg.conninfo
import sqlalchemy.engine

from acoustid_stack.config.table import SECTIONS

DatabaseName = Literal["app", "fingerprint", "ingest"]

MASK = "***"


@dataclass(frozen=True)
class DatabaseSettings:
    name: str
    host: str
    port: int
    user: str
    password: str | None = field(repr=False)
    pool_size: int | None  # None: the size the process kind asks for (sizing.py)
    pool_timeout: float
    connect_timeout: int

    def conninfo(self, dbname: str | None = None) -> str:
        """libpq keyword string for psycopg 3; ``dbname`` overrides ``name`` (e.g. "postgres")."""
        return psycopg.conninfo.make_conninfo(
            dbname=dbname or self.name,
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            connect_timeout=self.connect_timeout,
        )

    def sqlalchemy_url(self, dbname: str | None = None) -> str:
        """``postgresql+psycopg://`` URL with the password in it (pass it to create_engine)."""
        url = sqlalchemy.engine.URL.create(
            "postgresql+psycopg",
            username=self.user,
            password=self.password,
            host=self.host,
            port=self.port,
            database=dbname or self.name,
            query={"connect_timeout": str(self.connect_timeout)},
        )
        return url.render_as_string(hide_password=False)


@dataclass(frozen=True)
class DatabasesSettings:
    app: DatabaseSettings
    fingerprint: DatabaseSettings
    ingest: DatabaseSettings
    app_ro: DatabaseSettings
    fingerprint_ro: DatabaseSettings
    ingest_ro: DatabaseSettings

    def get(self, name: DatabaseName, *, readonly: bool = False) -> DatabaseSettings:
        """Settings of one database; the read-only replica equals the rw one unless configured."""
        if name not in ("app", "fingerprint", "ingest"):
            raise ValueError(f"unknown database {name!r}")
        database: DatabaseSettings = getattr(self, f"{name}_ro" if readonly else name)
        return database


@dataclass(frozen=True)
class RedisSettings:
    host: str
    port: int
    password: str | None = field(repr=False)
    db: int
    sentinels: list[tuple[str, int]]
    sentinel_master: str
    key_prefix: str

    def url(self) -> str:
        """``redis://`` URL of the directly configured server (with sentinels, ask them instead)."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"redis://{auth}{host}:{self.port}/{self.db}"


@dataclass(frozen=True)
class NatsSettings:
    servers: list[str]
    stream: str
    subject_prefix: str
    replicas: int
    user: str | None
    password: str | None = field(repr=False)
    creds_file: str | None
    reconnect_wait: float


@dataclass(frozen=True)
class IndexSettings:
    shards: list[str]
    name: str
    timeout: float
    snapshot_dir: str
    snapshot_interval: float
    snapshot_keep: int


@dataclass(frozen=True)
class WebsiteSettings:
    secret: str | None = field(repr=False)
    base_url: str
    debug: bool
    maintenance: bool
    shutdown_delay: float
    shutdown_file: str
    search_timeout: float
    search_return_metadata: bool


@dataclass(frozen=True)
class RateLimitSettings:
    global_rate: float
    ip_rate: float
    application_rate: float
    ip_overrides: Mapping[str, float]
    application_overrides: Mapping[int, float]

    def for_ip(self, address: str) -> float:
        """Requests/s allowed for one client address."""
        return self.ip_overrides.get(address, self.ip_rate)

    def for_application(self, application_id: int) -> float | None:
        """The configured rate of one application, or None (default rate and IP bucket apply)."""
        return self.application_overrides.get(application_id)


@dataclass(frozen=True)
class LoggingSettings:
    level: str
    levels: Mapping[str, str]  # logger name -> level


@dataclass(frozen=True)
class SentrySettings:
    dsn: str | None = field(repr=False)
    traces_sample_rate: float
    environment: str | None


@dataclass(frozen=True)
class ClusterSettings:
    role: Literal["master", "slave"]
    secret: str | None = field(repr=False)
    base_master_url: str | None


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int
    workers: int
    limit_concurrency: int
    timeout_keep_alive: int
    trusted_proxies: list[str]


@dataclass(frozen=True)
class ApiSettings(ServerSettings):
    pass


@dataclass(frozen=True)
class WebSettings(ServerSettings):
    apikeys_per_hour: int
    status_cache_seconds: float
    api_url: str | None


@dataclass(frozen=True)
class Effective:
    """One effective key: its value, where it came from, and whether it is a secret."""

    value: Any
    source: str
    secret: bool

    def shown(self) -> Any:
        """The value safe to display: secrets masked, passwords inside URLs masked."""
        if self.secret and self.value is not None:
            return MASK
        if isinstance(self.value, list):
            return [
                mask_url_password(item) if isinstance(item, str) else item for item in self.value
            ]
        if isinstance(self.value, str):
            return mask_url_password(self.value)
        return self.value


@dataclass(frozen=True)
class Settings:
    database: DatabasesSettings
    redis: RedisSettings
    nats: NatsSettings
    index: IndexSettings
    website: WebsiteSettings
    rate_limit: RateLimitSettings
    logging: LoggingSettings
    sentry: SentrySettings
    cluster: ClusterSettings
    api: ApiSettings
    web: WebSettings
    # "section.key" -> value and source, in table order; what `config check` prints
    effective: Mapping[str, Effective] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, compare=False
    )

    def masked(self) -> dict[str, dict[str, Any]]:
        """{section: {key: value}} for display, secrets replaced by "***"."""
        result: dict[str, dict[str, Any]] = {}
        for dotted, entry in self.effective.items():
            section, name = split_dotted(dotted)
            result.setdefault(section, {})[name] = entry.shown()
        return result

    def secret_values(self) -> frozenset[str]:
        """Every configured secret and URL password: what log output must never contain."""
        values = set()
        for entry in self.effective.values():
            items = entry.value if isinstance(entry.value, list) else [entry.value]
            for item in items:
                if not isinstance(item, str) or not item:
                    continue
                if entry.secret:
                    values.add(item)
                password = _url_password(item)
                if password:
                    values.add(password)
        return frozenset(values)


def split_dotted(dotted: str) -> tuple[str, str]:
    """("database.app.ro", "host") from "database.app.ro.host"; keys may contain dots too."""
    section = max((s for s in SECTIONS if dotted.startswith(s + ".")), key=len)
    return section, dotted[len(section) + 1 :]


def mask_url_password(text: str) -> str:
    """``scheme://user:***@host`` for a URL with a password; any other text unchanged."""
    if not _url_password(text):
        return text
    parts = urlsplit(text)
    netloc = f"{parts.username}:{MASK}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))


def _url_password(text: str) -> str | None:
    if "://" not in text or "@" not in text:
        return None
    try:
        return urlsplit(text).password
    except ValueError:
        return None
