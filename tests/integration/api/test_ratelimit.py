"""Rate limits on the real Redis: upstream's 20-s sliding window, buckets and fail-open."""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from types import MappingProxyType

import pytest

from acoustid_stack.config import Settings
from acoustid_stack.local.process import free_port
from api_support import Keys

from .conftest import make_client

pytestmark = pytest.mark.integration

PUID = {"puid": str(uuid.uuid4())}


def limited(settings: Settings, **rates: object) -> Settings:
    """Settings with these rate limits and Redis keys no other test shares."""
    prefix = f"{settings.redis.key_prefix}rl{secrets.token_hex(4)}:"
    return dataclasses.replace(
        settings,
        rate_limit=dataclasses.replace(settings.rate_limit, **rates),  # type: ignore[arg-type]
        redis=dataclasses.replace(settings.redis, key_prefix=prefix),
    )


def from_ip(ip: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip}


def test_a_client_over_its_ip_limit_gets_error_14_and_others_are_unaffected(
    api_settings: Settings,
) -> None:
    settings = limited(api_settings, ip_rate=1.0, ip_overrides=MappingProxyType({}))
    with make_client(settings) as client:
        for _ in range(20):  # 1 request/s over the 20-s window
            ok = client.get("/v2/track/list_by_puid", params=PUID, headers=from_ip("192.0.2.1"))
            assert ok.status_code == 200
        refused = client.get("/v2/track/list_by_puid", params=PUID, headers=from_ip("192.0.2.1"))
        other = client.get("/v2/track/list_by_puid", params=PUID, headers=from_ip("192.0.2.2"))
    assert refused.status_code == 429
    assert refused.json()["error"] == {
        "code": 14,
        "message": "rate limit (1.000000 requests per second) exceeded, try again later",
    }
    assert other.status_code == 200


def test_the_global_limit_applies_to_everyone(api_settings: Settings) -> None:
    settings = limited(api_settings, global_rate=0.5)
    with make_client(settings) as client:
        statuses = [
            client.get(
                "/v2/track/list_by_puid", params=PUID, headers=from_ip(f"192.0.2.{i}")
            ).status_code
            for i in range(11)
        ]
    assert statuses == [200] * 10 + [429]


def test_a_configured_application_rate_replaces_the_ip_bucket(
    api_settings: Settings, keys: Keys
) -> None:
    settings = limited(
        api_settings,
        ip_rate=0.1,
        application_overrides=MappingProxyType({keys.application_id: 1.0}),
    )
    params = {"client": keys.client_key}
    with make_client(settings) as client:
        statuses = [
            client.get("/v2/submission_status", params=params).status_code for _ in range(21)
        ]
        anonymous = [
            client.get("/v2/track/list_by_puid", params=PUID).status_code for _ in range(3)
        ]
    assert statuses == [200] * 20 + [429]
    assert anonymous == [200, 200, 429]  # no application: the 0.1/s IP bucket


def test_rate_limiting_fails_open_when_redis_is_down(api_settings: Settings) -> None:
    settings = limited(api_settings, ip_rate=0.05)
    settings = dataclasses.replace(
        settings, redis=dataclasses.replace(settings.redis, port=free_port())
    )
    with make_client(settings) as client:
        statuses = [client.get("/v2/track/list_by_puid", params=PUID).status_code for _ in range(5)]
    assert statuses == [200] * 5
