"""When each kind of backup last succeeded, failed and was verified; as JSON and as metrics.

`acoustid_backup.prom` in the repository is a Prometheus text file (node_exporter's
textfile collector serves it), so an alert fires when backups stop:
`time() - acoustid_backup_last_success_timestamp_seconds{kind="postgresql"} > 26 * 3600`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from acoustid_stack.ops.layout import BackupRepository


def read_status(repo: BackupRepository) -> dict[str, dict[str, Any]]:
    try:
        status: dict[str, dict[str, Any]] = json.loads(repo.status_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return status


def record(
    repo: BackupRepository,
    kind: str,
    *,
    event: str,
    size: int | None = None,
    error: str | None = None,
    at: datetime | None = None,
) -> None:
    """Record `event` (success | failure | verified | verify_failed) for `kind`, then
    rewrite the metrics file."""
    status = read_status(repo)
    entry = status.setdefault(kind, {})
    entry[f"last_{event}"] = (at or datetime.now(UTC)).isoformat()
    if size is not None:
        entry["size_bytes"] = size
    if error is not None:
        entry["error"] = error
    elif event in ("success", "verified"):
        entry.pop("error", None)
    repo.root.mkdir(parents=True, exist_ok=True)
    tmp = repo.status_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(status, indent=2, sort_keys=True))
    tmp.replace(repo.status_file)
    write_metrics(repo, status)


def write_metrics(repo: BackupRepository, status: dict[str, dict[str, Any]]) -> None:
    registry = CollectorRegistry()
    gauges = {
        "success": Gauge(
            "acoustid_backup_last_success_timestamp_seconds",
            "Unix time of the last successful backup.",
            ["kind"],
            registry=registry,
        ),
        "failure": Gauge(
            "acoustid_backup_last_failure_timestamp_seconds",
            "Unix time of the last failed backup.",
            ["kind"],
            registry=registry,
        ),
        "verified": Gauge(
            "acoustid_backup_last_verified_timestamp_seconds",
            "Unix time of the last backup that `backup verify` restored and checked.",
            ["kind"],
            registry=registry,
        ),
    }
    size = Gauge(
        "acoustid_backup_size_bytes", "Size of the last backup.", ["kind"], registry=registry
    )
    for kind, entry in status.items():
        for event, gauge in gauges.items():
            if f"last_{event}" in entry:
                moment = datetime.fromisoformat(entry[f"last_{event}"])
                gauge.labels(kind=kind).set(moment.timestamp())
        if "size_bytes" in entry:
            size.labels(kind=kind).set(entry["size_bytes"])
    write_to_textfile(str(repo.metrics_file), registry)
