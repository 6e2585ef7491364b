"""THE table of configuration keys.

Loading, environment variable names, secret masking, `config check` and acoustid.conf.dist all
derive from ``SECTIONS``, ``KEYS`` and ``PATTERN_KEYS``; adding a key is one row here plus the
matching field on its settings dataclass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Final

from acoustid_stack.config.values import (
    Boolean,
    Choice,
    HostPortList,
    Integer,
    IpAddress,
    NetworkList,
    Number,
    ReadableFile,
    Text,
    Url,
    UrlList,
    ValueType,
)

ENV_PREFIX: Final = "ACOUSTID_"
FILE_SUFFIX: Final = "_file"


class Inherit:
    """Default of a per-database key: take the value of the parent section."""

    def __repr__(self) -> str:
        return "INHERIT"


INHERIT: Final = Inherit()


@dataclass(frozen=True)
class Key:
    """One configuration key.

    ``default`` is text parsed like any other source; None means unset (the setting is None).
    An empty value is allowed only where the default is None or "" and then means that.
    """

    section: str
    name: str
    type: ValueType
    default: str | Inherit | None
    meaning: str
    secret: bool = False
    field: str = ""  # settings attribute; the key name unless that is a Python keyword

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def attribute(self) -> str:
        return self.field or self.name

    @property
    def env(self) -> str:
        return env_name(self.section, self.name)


@dataclass(frozen=True)
class PatternKey:
    """A family of keys ``<prefix>.<suffix>`` such as ``level.<logger>`` or ``ip.<addr>``."""

    section: str
    prefix: str
    placeholder: str
    suffix_type: ValueType
    type: ValueType
    meaning: str
    example: tuple[str, str]  # (suffix, value) shown in the dist file
    # How an env suffix maps back to a key suffix; None means the family has no env form
    # (an IPv6 address cannot be spelled in an env variable name).
    env_suffix: str | None = None

    @property
    def pattern(self) -> str:
        return f"{self.prefix}.<{self.placeholder}>"

    @property
    def env_prefix(self) -> str:
        return env_name(self.section, self.prefix) + "_"


def env_name(section: str, name: str) -> str:
    return ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", f"{section}_{name}").upper()


# section -> what it configures (the dist file prints it as the section header)
SECTIONS: Final[dict[str, str]] = {
    "database": "Values shared by the three PostgreSQL databases; each [database.<db>] overrides.",
    "database.app": "Application database (accounts, API keys, stats).",
    "database.fingerprint": "Fingerprint database (tracks, fingerprints, MBIDs).",
    "database.ingest": "Ingest database (submissions waiting for import).",
    "database.app.ro": "Optional read-only replica of the app database; unset keys use the rw one.",
    "database.fingerprint.ro": "Optional read-only replica of the fingerprint database.",
    "database.ingest.ro": "Optional read-only replica of the ingest database.",
    "redis": "Redis: rate limiting, stats counters, caches. Direct, or through Sentinel.",
    "nats": "NATS JetStream: the doorbell that tells workers a submission is waiting.",
    "index": "Fingerprint index shards (our index server or upstream fpindex).",
    "website": "Shared by the api and the website.",
    "rate_limit": "Requests/s per bucket (upstream [rate_limiter]); Redis down = no limiting.",
    "logging": "Log levels; the format is fixed.",
    "sentry": "Error reporting; off while dsn is unset.",
    "cluster": "Master/slave deployment roles as upstream.",
    "api": "The /v2 API server (`acoustid-stack run api`).",
    "web": "The website server (`acoustid-stack run web`).",
}

DATABASES: Final = ("app", "fingerprint", "ingest")

_PORT = Integer(1, 65535)
_HTTP = ("http", "https")

_SHARED_DATABASE_KEYS: Final = (
    Key("database", "host", Text(), "127.0.0.1", "Server host name, IP address or socket dir."),
    Key("database", "port", _PORT, "5432", "Server port."),
    Key("database", "user", Text(), "acoustid", "Role to connect as."),
    Key("database", "password", Text(), None, "Password of that role.", secret=True),
    Key(
        "database",
        "pool_size",
        Integer(1, 1000),
        None,
        "Connections in each pool of a process. Unset: each process kind's own sizes "
        "(sizing.PROCESS_CONNECTIONS), which the derived PostgreSQL max_connections counts; "
        "set, every pool holds this many: raise max_connections to match.",
    ),
    Key("database", "pool_timeout", Number(0.1), "30", "Seconds to wait for a pooled connection."),
    Key("database", "connect_timeout", Integer(1, 600), "10", "Seconds to wait to connect."),
)


def _database_keys() -> tuple[Key, ...]:
    keys = list(_SHARED_DATABASE_KEYS)
    for database in DATABASES:
        for section, parent in (
            (f"database.{database}", "database"),
            (f"database.{database}.ro", f"database.{database}"),
        ):
            name_default: str | Inherit = (
                f"acoustid_{database}" if parent == "database" else INHERIT
            )
            keys.append(Key(section, "name", Text(), name_default, "Database name."))
            keys.extend(
                replace(key, section=section, default=INHERIT, meaning=f"Overrides [{parent}].")
                for key in _SHARED_DATABASE_KEYS
            )
    return tuple(keys)


KEYS: Final[tuple[Key, ...]] = (
    *_database_keys(),
    Key("redis", "host", Text(), "127.0.0.1", "Redis host (ignored when sentinels are set)."),
    Key("redis", "port", _PORT, "6379", "Redis port."),
    Key("redis", "password", Text(), None, "Redis password (AUTH).", secret=True),
    Key("redis", "db", Integer(0, 15), "0", "Redis database number."),
    Key(
        "redis",
        "sentinels",
        HostPortList(),
        "",
        "Sentinels as host:port,host:port; when set, the master is found through them.",
    ),
    Key("redis", "sentinel_master", Text(), "acoustid", "Name of the master sentinels watch."),
    Key("redis", "key_prefix", Text(), "", "Prefix of every key we write (shared Redis)."),
    Key(
        "nats",
        "servers",
        UrlList(("nats", "tls", "ws", "wss")),
        "nats://127.0.0.1:4222",
        "NATS servers, comma-separated.",
    ),
    Key("nats", "stream", Text(), "SUBMISSIONS", "JetStream stream of submission ids."),
    Key("nats", "subject_prefix", Text(), "acoustid.submissions", "Subject prefix of the stream."),
    Key("nats", "replicas", Integer(1, 5), "1", "Stream replicas (3 on a 3-node cluster)."),
    Key("nats", "user", Text(), None, "NATS user name."),
    Key("nats", "password", Text(), None, "NATS password.", secret=True),
    Key("nats", "creds_file", ReadableFile(), None, "NATS credentials (.creds) file."),
    Key(
        "nats",
        "reconnect_wait",
        Number(0.01, 60),
        "2.0",
        "Seconds between attempts to reach NATS: services retry forever (each process up "
        "to 25 % longer), one-shot commands try each server twice, then fail.",
    ),
    Key(
        "index",
        "shards",
        UrlList(_HTTP),
        "http://127.0.0.1:6081",
        "Index shard base URLs, comma-separated; the order defines the hash ring.",
    ),
    Key("index", "name", Text(), "fingerprints", "Index name on every shard."),
    Key("index", "timeout", Number(0.01, 60), "1.0", "Seconds to wait for one shard."),
    Key(
        "index",
        "snapshot_dir",
        Text(),
        "",
        "Folder where cron keeps a snapshot of every shard (one sub-folder per shard); "
        "empty = no snapshots.",
    ),
    Key(
        "index",
        "snapshot_interval",
        Number(60),
        "86400",
        "Seconds between two snapshots of a shard.",
    ),
    Key("index", "snapshot_keep", Integer(1, 1000), "7", "Snapshots kept per shard, newest first."),
    Key("website", "secret", Text(), None, "Signs sessions and demo API keys.", secret=True),
    Key("website", "base_url", Url(_HTTP), "http://127.0.0.1:5001/", "Public website URL."),
    Key("website", "debug", Boolean(), "false", "Show debugging details in responses."),
    Key("website", "maintenance", Boolean(), "false", "Refuse writes (maintenance mode)."),
    Key("website", "shutdown_delay", Number(0, 600), "0", "Seconds to drain after SIGTERM."),
    Key(
        "website",
        "shutdown_file",
        Text(),
        "/tmp/acoustid-server-shutdown.txt",  # noqa: S108 -- upstream's, for its probes  # nosec B108
        "While this file exists, health checks answer 503.",
    ),
    Key("website", "search_timeout", Number(0.01, 60), "1.0", "Seconds for one index search."),
    Key(
        "website",
        "search_return_metadata",
        Boolean(),
        "true",
        "Lookups may return recording/release metadata.",
    ),
    Key("rate_limit", "global", Number(0), "100", "Requests/s, all clients.", field="global_rate"),
    Key("rate_limit", "ip", Number(0), "4", "Requests/s per client IP.", field="ip_rate"),
    Key(
        "rate_limit",
        "application",
        Number(0),
        "10",
        "Requests/s per application.",
        field="application_rate",
    ),
    Key(
        "logging",
        "level",
        Choice(("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), case_sensitive=False),
        "INFO",
        "Level of the root logger.",
    ),
    Key("sentry", "dsn", Url(_HTTP), None, "Sentry DSN; unset disables Sentry.", secret=True),
    Key("sentry", "traces_sample_rate", Number(0, 1), "0", "Share of requests traced."),
    Key("sentry", "environment", Text(), None, "Environment name reported to Sentry."),
    Key("cluster", "role", Choice(("master", "slave")), "master", "Role of this deployment."),
    Key("cluster", "secret", Text(), None, "Shared secret between master and slaves.", secret=True),
    Key("cluster", "base_master_url", Url(_HTTP), None, "Master URL (required on a slave)."),
    Key("api", "host", Text(), "127.0.0.1", "Address the API server binds to."),
    Key("api", "port", _PORT, "5000", "Port of the API server."),
    Key("api", "workers", Integer(1, 256), "1", "API server worker processes."),
    Key(
        "api",
        "limit_concurrency",
        Integer(1, 1_000_000),
        "1000",
        "Connections and requests one API server worker holds at once; past it new requests get "
        "503. Request line and headers are capped at 64 KiB (431).",
    ),
    Key(
        "api",
        "timeout_keep_alive",
        Integer(1, 600),
        "5",
        "Seconds an idle keep-alive connection to the API server stays open, and that a "
        "request's line and headers may take from the connection's opening or the "
        "previous response.",
    ),
    Key(
        "api",
        "trusted_proxies",
        NetworkList(),
        "",
        "Networks (CIDR) of the reverse proxies in front of the API. X-Forwarded-For and "
        "X-Forwarded-Proto count only from a peer in one: the client is the rightmost "
        "forwarded address outside them. Empty: the peer is the client, headers are ignored.",
    ),
    Key("web", "host", Text(), "127.0.0.1", "Address the website binds to."),
    Key("web", "port", _PORT, "5001", "Port of the website."),
    Key("web", "workers", Integer(1, 256), "1", "Website worker processes."),
    Key(
        "web",
        "limit_concurrency",
        Integer(1, 1_000_000),
        "1000",
        "Connections and requests one website worker holds at once; past it new requests get "
        "503. Request line and headers are capped at 64 KiB (431).",
    ),
    Key(
        "web",
        "timeout_keep_alive",
        Integer(1, 600),
        "5",
        "Seconds an idle keep-alive connection to the website stays open, and that a "
        "request's line and headers may take from the connection's opening or the "
        "previous response.",
    ),
    Key(
        "web",
        "trusted_proxies",
        NetworkList(),
        "",
        "Networks (CIDR) of the reverse proxies in front of the website, as [api] "
        "trusted_proxies: the client address /apikey's per-address limit counts.",
    ),
    Key(
        "web",
        "apikeys_per_hour",
        Integer(1, 1_000_000),
        "10",
        "API keys one client address may create per clock hour (Redis down: no limit).",
    ),
    Key(
        "web",
        "status_cache_seconds",
        Number(0, 3600),
        "10",
        "Seconds the status page's figures are reused before they are computed again.",
    ),
    Key(
        "web",
        "api_url",
        Url(_HTTP),
        None,
        "Public URL of the API, which the website links to (its docs at /v2/docs). "
        "Unset: http://<[api] host>:<[api] port>, right when both run on one machine.",
    ),
)

_LEVEL = next(key.type for key in KEYS if key.dotted == "logging.level")

PATTERN_KEYS: Final[tuple[PatternKey, ...]] = (
    PatternKey(
        "rate_limit",
        "ip",
        "addr",
        IpAddress(),
        Number(0),
        "Requests/s for one client IP instead of [rate_limit] ip. No env form.",
        ("192.0.2.10", "20"),
    ),
    PatternKey(
        "rate_limit",
        "application",
        "id",
        Integer(1),
        Number(0),
        "Requests/s for one application id; that application then skips the IP bucket.",
        ("42", "50"),
        env_suffix="<ID>",
    ),
    PatternKey(
        "logging",
        "level",
        "logger",
        Text(),
        _LEVEL,
        "Level of one logger. In env, '.' in the logger name is written '__'.",
        ("sqlalchemy.engine", "WARNING"),
        env_suffix="<LOGGER>",
    ),
)

KEYS_BY_NAME: Final[dict[tuple[str, str], Key]] = {(key.section, key.name): key for key in KEYS}
KEYS_BY_ENV: Final[dict[str, Key]] = {key.env: key for key in KEYS}


def parent_section(section: str) -> str:
    """Where an INHERIT key of ``section`` takes its value from."""
    return section.rpartition(".")[0]


def keys_of(section: str) -> tuple[Key, ...]:
    return tuple(key for key in KEYS if key.section == section)


def env_suffix_to_key(suffix: str) -> str:
    """Key suffix an env suffix names: ``SQLALCHEMY__ENGINE`` -> ``sqlalchemy.engine``."""
    return suffix.lower().replace("__", ".")


def key_suffix_to_env(suffix: str) -> str:
    return suffix.replace(".", "__").upper()
