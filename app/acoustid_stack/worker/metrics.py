"""Prometheus metrics of the worker (served on `run worker --metrics-port`)."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from acoustid_stack.worker.interfaces import ImportOutcome

#: `worker_batches_deferred_total` reason: an index shard did not answer the batch's
#: searches or writes
SHARD_UNAVAILABLE = "index_shard_unavailable"


class WorkerMetrics:
    """`worker_imports_total{outcome}`, `worker_import_errors_total`,
    `worker_import_duration_seconds`, `worker_jetstream_available`,
    `worker_jetstream_outages_total`, `worker_consumer_recreations_total`,
    `worker_batches_deferred_total{reason}`; pass a fresh registry in tests."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.imports = Counter(
            "worker_imports_total",
            "Submissions handled, by outcome (imported, rejected, already_handled, missing, busy).",
            ["outcome"],
            registry=registry,
        )
        for outcome in ImportOutcome:
            self.imports.labels(outcome.value)
        self.errors = Counter(
            "worker_import_errors_total",
            "Imports that failed with an error and were sent back for a later retry.",
            registry=registry,
        )
        self.duration = Histogram(
            "worker_import_duration_seconds",
            "Time to import one fetched batch of submission messages.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=registry,
        )
        self.jetstream_available = Gauge(
            "worker_jetstream_available",
            "1 while the worker's consumer answers, 0 while it waits out a JetStream outage.",
            registry=registry,
        )
        self.jetstream_outages = Counter(
            "worker_jetstream_outages_total",
            "Periods in which JetStream did not answer the worker (no leader, no server).",
            registry=registry,
        )
        self.consumer_recreations = Counter(
            "worker_consumer_recreations_total",
            "Times the stream or durable consumer was found missing and created again.",
            registry=registry,
        )
        self.deferred = Counter(
            "worker_batches_deferred",
            "Fetched batches sent back unimported because a service they need was incomplete "
            "(index_shard_unavailable: an index shard did not answer).",
            ["reason"],
            registry=registry,
        )
        self.deferred.labels(SHARD_UNAVAILABLE)
