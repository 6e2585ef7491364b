"""Where a running service answers. Plain values, handed from the harness to whoever connects."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import SplitResult, quote, urlsplit

from acoustid_stack.errors import UserError


@dataclass(frozen=True)
class PostgresEndpoint:
    host: str
    port: int
    user: str = "postgres"
    password: str | None = None

    def conninfo(self, dbname: str = "postgres") -> str:
        parts = [f"host={self.host}", f"port={self.port}", f"user={self.user}", f"dbname={dbname}"]
        if self.password:
            parts.append(f"password='{_libpq_quote(self.password)}'")
        return " ".join(parts)

    @classmethod
    def from_url(cls, url: str) -> PostgresEndpoint:
        parsed = _parse(url, ("postgres", "postgresql"))
        return cls(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 5432,
            user=parsed.username or "postgres",
            password=parsed.password,
        )


@dataclass(frozen=True)
class RedisEndpoint:
    host: str
    port: int
    password: str | None = None

    def url(self, db: int = 0) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/{db}"

    @classmethod
    def from_url(cls, url: str) -> RedisEndpoint:
        parsed = _parse(url, ("redis",))
        return cls(
            host=parsed.hostname or "127.0.0.1", port=parsed.port or 6379, password=parsed.password
        )


@dataclass(frozen=True)
class NatsEndpoint:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @classmethod
    def from_url(cls, url: str) -> NatsEndpoint:
        parsed = _parse(url, ("nats",))
        return cls(host=parsed.hostname or "127.0.0.1", port=parsed.port or 4222)


def _parse(url: str, schemes: tuple[str, ...]) -> SplitResult:
    parsed = urlsplit(url)
    if parsed.scheme not in schemes:
        raise UserError(f"{url!r} is not a {schemes[0]}:// URL")
    try:
        parsed.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise UserError(f"{url!r} has an invalid port") from exc
    return parsed


def _libpq_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")
