import pytest

from acoustid_stack.errors import UserError
from acoustid_stack.local.endpoints import NatsEndpoint, PostgresEndpoint, RedisEndpoint


def test_postgres_url_becomes_conninfo_with_quoted_password() -> None:
    endpoint = PostgresEndpoint.from_url("postgresql://app:it's@db.example:6543")
    assert endpoint == PostgresEndpoint("db.example", 6543, "app", "it's")
    assert endpoint.conninfo("x") == (
        "host=db.example port=6543 user=app dbname=x password='it\\'s'"
    )


def test_redis_url_keeps_password_and_defaults_port() -> None:
    endpoint = RedisEndpoint.from_url("redis://:s3cret@cache")
    assert (endpoint.port, endpoint.password) == (6379, "s3cret")
    assert endpoint.url(2) == "redis://:s3cret@cache:6379/2"


def test_nats_url_round_trips() -> None:
    assert NatsEndpoint.from_url("nats://127.0.0.1:4333").url == "nats://127.0.0.1:4333"


@pytest.mark.parametrize(
    ("parse", "url", "message"),
    [
        (PostgresEndpoint.from_url, "mysql://x", "is not a postgres:// URL"),
        (RedisEndpoint.from_url, "redis://h:notaport", "has an invalid port"),
    ],
)
def test_bad_urls_are_user_errors(parse: object, url: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse(url)  # type: ignore[operator]
