"""Who the client is when reverse proxies stand in front (`[api]`/`[web] trusted_proxies`).

X-Forwarded-For is whatever the client wrote plus one address per proxy, appended on the
right. Only the part our own proxies appended can be believed, so the chain is read from the
right: past every trusted proxy, the first address is the client. From an untrusted peer
(or with no trusted proxies configured) the header is ignored: the peer is the client.
Only parseable IP addresses come out, so rate-limit keys and stats rows hold nothing else.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final

from starlette.requests import HTTPConnection

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: What a peer that is not an IP address (a unix socket, a test transport) counts as.
UNKNOWN_PEER: Final = "127.0.0.1"


class TrustedProxies:
    def __init__(self, networks: Iterable[str]) -> None:
        self._networks: tuple[_Network, ...] = tuple(ipaddress.ip_network(n) for n in networks)

    def trusts(self, peer: str) -> bool:
        address = _address(peer)
        return address is not None and self._trusted(address)

    def client_ip(self, peer: str, forwarded_for: str) -> str:
        """The client's address given the connecting peer and its X-Forwarded-For."""
        current = _address(peer)
        if current is None:
            return UNKNOWN_PEER
        hops = [hop.strip() for hop in forwarded_for.split(",")] if forwarded_for else []
        while self._trusted(current) and hops:
            hop = _address(hops.pop())
            if hop is None:
                # a trusted proxy wrote this position; garbage there is the client's own
                # text, so the last address a proxy vouched for is what we know
                break
            current = hop
        return str(current)

    def client_of(self, request: HTTPConnection) -> str:
        """The client's address of a request: its peer and every X-Forwarded-For line, read
        as if one comma-separated list."""
        peer = request.client.host if request.client else ""
        return self.client_ip(peer, ",".join(request.headers.getlist("x-forwarded-for")))

    def _trusted(self, address: _Address) -> bool:
        return any(address in network for network in self._networks)


def _address(text: str) -> _Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
