"""Rate limits on the real Redis: upstream's 20-s sliding window, buckets and fail-open."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import uuid
from types import MappingProxyType

import pytest
import redis
import redis.asyncio as aioredis

from acoustid_stack.api.errors import ApiError
from acoustid_stack.api.ratelimit import RateLimiter
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


def test_the_window_slides_by_slot_and_only_the_refusing_bucket_is_undone(
    api_settings: Settings,
) -> None:
    """Upstream's counting, on a clock the test moves: 20 s in four 5-s slots; a refused
    request keeps its count in the buckets before the one over its limit."""
    settings = limited(
        api_settings,
        application_rate=100.0,
        global_rate=100.0,
        ip_rate=1.0,
        ip_overrides=MappingProxyType({}),
    )
    now = [1_000_000.0]  # the start of a slot
    client = redis.Redis(host=settings.redis.host, port=settings.redis.port)
    prefix = f"{settings.redis.key_prefix}rl:"

    def counts(slot: int) -> dict[str, int]:
        return {
            bucket: int(client.get(f"{prefix}{bucket}:{slot}") or 0)
            for bucket in ("app:7", "global", "ip:192.0.2.9")
        }

    async def scenario() -> list[bool]:
        server = aioredis.Redis(host=settings.redis.host, port=settings.redis.port)
        limiter = RateLimiter(
            redis=server,
            settings=settings.rate_limit,
            key_prefix=settings.redis.key_prefix,
            clock=lambda: now[0],
        )

        async def allowed() -> bool:
            try:
                await limiter.check(client_ip="192.0.2.9", application_id=7)
            except ApiError:
                return False
            return True

        outcomes = [await allowed() for _ in range(21)]  # the window holds 20
        now[0] += 15  # three slots on: the first slot is still in the window
        outcomes.append(await allowed())
        now[0] += 5  # four slots on: the first slot has left it
        outcomes.append(await allowed())
        await server.aclose()
        return outcomes

    first_slot = int(now[0] / 5)
    try:
        outcomes = asyncio.run(scenario())
        assert outcomes == [True] * 20 + [False, False, True]
        # the refused requests counted in app and global, not in the ip bucket over its limit
        assert counts(first_slot) == {"app:7": 21, "global": 21, "ip:192.0.2.9": 20}
        assert counts(first_slot + 3) == {"app:7": 1, "global": 1, "ip:192.0.2.9": 0}
        assert counts(first_slot + 4) == {"app:7": 1, "global": 1, "ip:192.0.2.9": 1}
        assert 0 < client.ttl(f"{prefix}global:{first_slot}") <= 25
    finally:
        client.delete(*client.keys(f"{prefix}*"))
        client.close()


def test_a_6_kb_forwarded_text_keys_the_bucket_of_the_proxy_that_passed_it(
    api_settings: Settings,
) -> None:
    settings = limited(api_settings, ip_overrides=MappingProxyType({}))
    forwarded = secrets.token_urlsafe(4500)  # whatever the client wrote: no address
    client = redis.Redis(host=settings.redis.host, port=settings.redis.port)
    prefix = f"{settings.redis.key_prefix}rl:ip:"
    try:
        with make_client(settings) as api:
            response = api.get("/v2/track/list_by_puid", params=PUID, headers=from_ip(forwarded))
        assert response.status_code == 200
        [key] = [key.decode() for key in client.scan_iter(match=f"{prefix}*")]
        assert key.startswith(f"{prefix}127.0.0.1:")  # the trusted proxy's, never the text
    finally:
        client.delete(*client.keys(f"{settings.redis.key_prefix}rl:*"))
        client.close()
