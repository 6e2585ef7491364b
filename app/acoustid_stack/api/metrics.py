"""Prometheus metrics of the api, with the seed's names.

Under `acoustid-stack run api` every worker process writes its samples to the directory in
PROMETHEUS_MULTIPROC_DIR and `/metrics` aggregates all of them, so any worker answers for
the whole server. Without that variable (tests, a single process) the registry is local.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import Response

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


class ApiMetrics:
    """The api's metrics, registered in `registry` (one per app instance)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "api_requests_total",
            "API requests answered.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "api_request_duration_seconds",
            "Time to answer an API request.",
            ["endpoint", "method"],
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.handled_errors = Counter(
            "api_handled_errors_total",
            "API errors answered with an error code.",
            ["error_code"],
            registry=self.registry,
        )
        self.unhandled_errors = Counter(
            "api_unhandled_errors_total",
            "Unexpected exceptions (answered as error 5).",
            registry=self.registry,
        )
        self.lookup_searches = Counter(
            "api_lookup_searches_total",
            "Fingerprint searches made by lookups.",
            registry=self.registry,
        )
        self.lookup_matches = Counter(
            "api_lookup_matches_total",
            "Lookup fingerprint searches that found at least one track.",
            registry=self.registry,
        )
        self.new_submissions = Counter(
            "new_submissions_total",
            "Submissions stored in the ingest database.",
            registry=self.registry,
        )

    async def endpoint(self, request: Request) -> Response:
        """`/metrics`: this process's registry, or every worker's samples in multiprocess mode."""
        registry = self.registry
        if os.environ.get(MULTIPROC_DIR_ENV):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
