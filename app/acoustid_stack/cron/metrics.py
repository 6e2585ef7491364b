"""Prometheus metrics of cron (served on `run cron --metrics-port`)."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram


class CronMetrics:
    """`cron_leader` (1 while this process holds the lock), `cron_job_runs_total{job,result}`,
    `cron_job_duration_seconds{job}`."""

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
