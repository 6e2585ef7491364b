"""`index_shard_layout`, `index_shard_urls`: where each fingerprint-index shard runs.

The order of the list is the app's hash ring (`[index] shards`), so it must never depend on
anything but the inventory's `index` group order and the shard count.
"""

from __future__ import annotations

from typing import Any


def index_shard_layout(hosts: list[str], shards: int, base_port: int) -> list[dict[str, Any]]:
    """Shard n runs on hosts[n % len(hosts)] at base_port + n // len(hosts).

    One shard per host when shards == len(hosts); several per host (consecutive ports) when
    there are more shards than hosts. Raises ValueError on an empty group or shards < 1.
    """
    if not hosts:
        raise ValueError("the index group has no hosts; add at least one to the inventory")
    if int(shards) < 1:
        raise ValueError(f"index_shards must be >= 1, got {shards}")
    count = len(hosts)
    return [
        {"shard": n, "host": hosts[n % count], "port": int(base_port) + n // count}
        for n in range(int(shards))
    ]


def index_shard_urls(layout: list[dict[str, Any]], hostvars: Any) -> list[str]:
    """The shard base URLs in ring order, at each host's `acoustid_private_address`."""
    return [
        f"http://{hostvars[item['host']]['acoustid_private_address']}:{item['port']}"
        for item in layout
    ]


class FilterModule:
    """Ansible entry point."""

    def filters(self) -> dict[str, Any]:
        return {"index_shard_layout": index_shard_layout, "index_shard_urls": index_shard_urls}
