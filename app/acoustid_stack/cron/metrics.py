"""Prometheus metrics of cron (served on `run cron --metrics-port`)."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram


class CronMetrics:
    """`cron_leader` (1 while this process holds the lock), `cron_job_runs_total{job,result}`,
    `cron_job_duration_seconds{job}`, `cron_stats_skipped_total{table}` (counter fields a
    stats flush dropped from Redis unstored: malformed, or refused by the database); per
    index shard (labelled by its URL) the newest snapshot's time and size and the failed
    snapshot attempts; the submission backlog as the leader last counted it
    (`acoustid_submissions_pending`, `acoustid_submissions_oldest_pending_age_seconds`)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.leader = Gauge(
            "cron_leader", "1 while this process is the cron leader.", registry=registry
        )
        self.runs = Counter(
            "cron_job_runs_total",
            "Cron job runs by result (ok, error).",
            ["job", "result"],
            registry=registry,
        )
        self.duration = Histogram(
            "cron_job_duration_seconds",
            "Duration of one cron job run.",
            ["job"],
            registry=registry,
        )
        self.stats_skipped = Counter(
            "cron_stats_skipped_total",
            "Counter fields a stats flush dropped from Redis because they could not be stored.",
            ["table"],
            registry=registry,
        )
        self.snapshot_time = Gauge(
            "cron_index_snapshot_last_success_timestamp_seconds",
            "Unix time of the newest complete snapshot of an index shard.",
            ["shard"],
            registry=registry,
        )
        self.snapshot_bytes = Gauge(
            "cron_index_snapshot_bytes",
            "Size of the newest complete snapshot of an index shard.",
            ["shard"],
            registry=registry,
        )
        self.pending = Gauge(
            "acoustid_submissions_pending",
            "Submissions not imported yet, as the cron leader last counted them.",
            registry=registry,
        )
        self.oldest_pending_age = Gauge(
            "acoustid_submissions_oldest_pending_age_seconds",
            "Age of the oldest submission not imported yet (0 when none is pending).",
            registry=registry,
        )
        self.snapshot_failures = Counter(
            "cron_index_snapshot_failures_total",
            "Snapshots of an index shard that failed (its older snapshots are kept).",
            ["shard"],
            registry=registry,
        )
