"""`postgresql_current_primary`: which PostgreSQL host is the primary now.

The inventory names the first primary (`postgresql_primary`). After `failover.yml` promotes a
replica, the hosts hold a record of it (local fact `acoustid_postgresql`: `primary`,
`promoted_at`), so later runs follow the promoted host instead of the inventory's order.
"""

from __future__ import annotations

from typing import Any

FACT = "acoustid_postgresql"


def postgresql_current_primary(groups: Any, hostvars: Any) -> str:
    """The primary named by the newest failover record on the PostgreSQL hosts, if any.

    Only the hosts whose facts were gathered in this run are read; a record naming a host that
    is no longer in the inventory's PostgreSQL groups is ignored.
    """
    declared = list(groups.get("postgresql_primary") or [])
    if not declared:
        raise ValueError("the postgresql_primary group is empty; put the primary host in it")
    candidates = declared + list(groups.get("postgresql_replicas") or [])
    records = []
    for host in candidates:
        record = (hostvars[host].get("ansible_local") or {}).get(FACT) or {}
        if record.get("primary") in candidates and record.get("promoted_at"):
            records.append((str(record["promoted_at"]), str(record["primary"])))
    return max(records)[1] if records else declared[0]


class FilterModule:
    """Ansible entry point."""

    def filters(self) -> dict[str, Any]:
        return {"postgresql_current_primary": postgresql_current_primary}
