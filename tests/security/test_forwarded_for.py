"""Issue 17 item 3: X-Forwarded-For counts only from trusted proxies (`[api] trusted_proxies`),
read from the right, so a made-up header neither escapes the per-IP rate limit nor puts
arbitrary text into rate-limit keys."""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from types import MappingProxyType

import pytest

from acoustid_stack.config import Settings
from api_support.fixtures import make_client

pytestmark = [pytest.mark.security, pytest.mark.integration]

PUID = {"puid": str(uuid.uuid4())}
WINDOW_REQUESTS = 20  # 1 request/s over the limiter's 20-s window


def limited(settings: Settings, trusted_proxies: list[str]) -> Settings:
    """One request per second per IP, Redis keys of its own, these trusted proxies."""
    return dataclasses.replace(
        settings,
        rate_limit=dataclasses.replace(
            settings.rate_limit, ip_rate=1.0, ip_overrides=MappingProxyType({})
        ),
        redis=dataclasses.replace(
            settings.redis, key_prefix=f"{settings.redis.key_prefix}xff{secrets.token_hex(4)}:"
        ),
        api=dataclasses.replace(settings.api, trusted_proxies=trusted_proxies),
    )


def test_a_forged_header_from_an_untrusted_peer_is_ignored(api_settings: Settings) -> None:
    settings = limited(api_settings, trusted_proxies=[])
    with make_client(settings, peer="203.0.113.9") as client:
        statuses = [
            client.get(
                "/v2/track/list_by_puid", params=PUID, headers={"X-Forwarded-For": f"10.9.0.{n}"}
            ).status_code
            for n in range(WINDOW_REQUESTS + 1)
        ]
    assert statuses[:WINDOW_REQUESTS] == [200] * WINDOW_REQUESTS
    assert statuses[WINDOW_REQUESTS] == 429  # one peer, one budget, whatever it claims


def test_behind_trusted_proxies_the_client_is_the_rightmost_untrusted_address(
    api_settings: Settings,
) -> None:
    settings = limited(api_settings, trusted_proxies=["10.0.0.0/8"])
    with make_client(settings, peer="10.0.0.2") as client:

        def get(forwarded_for: str) -> int:
            headers = {"X-Forwarded-For": forwarded_for}
            return client.get("/v2/track/list_by_puid", params=PUID, headers=headers).status_code

        # what the client wrote (left) varies; what our proxies appended does not
        statuses = [get(f"198.51.100.{n}, 192.0.2.50, 10.1.2.3") for n in range(WINDOW_REQUESTS)]
        refused = get("anything, 192.0.2.50, 10.1.2.3")
        other = get("192.0.2.50, 192.0.2.51, 10.1.2.3")
        garbage = get("<script>")  # from a trusted peer: the peer itself (10.0.0.2)
    assert statuses == [200] * WINDOW_REQUESTS
    assert refused == 429
    assert other == 200
    assert garbage == 200
