"""TrustedProxies: the client address from a peer and its X-Forwarded-For chain."""

from __future__ import annotations

import pytest

from acoustid_stack.proxies import UNKNOWN_PEER, TrustedProxies

PROXIES = TrustedProxies(["10.0.0.0/8", "fd00::/8"])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("192.0.2.1", "198.51.100.7", "192.0.2.1"),  # untrusted peer: header ignored
        ("10.0.0.2", "", "10.0.0.2"),
        ("10.0.0.2", "1.2.3.4, 192.0.2.50", "192.0.2.50"),
        ("10.0.0.2", "1.2.3.4, 192.0.2.50, 10.9.9.9", "192.0.2.50"),
        ("10.0.0.2", "10.1.1.1, 10.2.2.2", "10.1.1.1"),  # all trusted: the farthest
        ("10.0.0.2", "junk, 10.2.2.2", "10.2.2.2"),  # garbage: the last vouched address
        ("fd00::1", "2001:db8::7", "2001:db8::7"),
        ("testclient", "192.0.2.1", UNKNOWN_PEER),
    ],
)
def test_client_ip(peer: str, forwarded_for: str, client: str) -> None:
    assert PROXIES.client_ip(peer, forwarded_for) == client


def test_no_trusted_proxies_trust_no_header() -> None:
    assert TrustedProxies([]).client_ip("127.0.0.1", "192.0.2.1") == "127.0.0.1"
