"""Prometheus metrics of the index server, with the seed's `fpindex_*` names.

Upstream fpindex's names (`fpindex_searches_total`, `fpindex_search_hits_total`,
`fpindex_search_misses_total`, `fpindex_search_duration_seconds`, `fpindex_updates_total`,
`fpindex_checkpoints_total`, `fpindex_memory_merges_total`, `fpindex_file_merges_total`,
`fpindex_docs`, `fpindex_scanned_docs_per_hash`, `fpindex_version`) are exposed too, so its
dashboards work; ours carry an `index` label where upstream has none, which sums away in a
dashboard's query. `fpindex_scanned_blocks_per_hash` has no counterpart: our segments have
no blocks (a term's postings are read from one bucket per segment).

Durations are observed where the work happens; sizes and counts are read from the
stores at scrape time, so they are never stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
from numpy.typing import NDArray
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from acoustid_stack.index.store import IndexStore

_FAST = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SCANNED = (1, 10, 100, 1_000, 10_000, 100_000, 1_000_000)
_SLOW = (0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class IndexMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.search_duration = Histogram(
            "fpindex_search_duration_seconds",
            "Time to answer one _search",
            ["index"],
            buckets=_FAST,
            registry=self.registry,
        )
        self.insert_duration = Histogram(
            "fpindex_insert_duration_seconds",
            "Time to apply one _update (WAL fsync included)",
            ["index"],
            buckets=_FAST,
            registry=self.registry,
        )
        self.merge_duration = Histogram(
            "fpindex_merge_duration_seconds",
            "Time of one segment merge or memory flush",
            ["index", "kind"],
            buckets=_SLOW,
            registry=self.registry,
        )
        self.scanned_docs = Histogram(
            "fpindex_scanned_docs_per_hash",
            "Postings read per distinct query term, the mean of one search",
            ["index"],
            buckets=_SCANNED,
            registry=self.registry,
        )
        self.searches = self._counter("fpindex_searches", "Searches answered")
        self.search_hits = self._counter("fpindex_search_hits", "Searches with a result")
        self.search_misses = self._counter("fpindex_search_misses", "Searches without a result")
        self.updates = self._counter("fpindex_updates", "Changes (inserts, deletes) applied")
        # the store's kinds of maintenance work, under upstream's names
        self._maintenance = {
            "flush": self._counter("fpindex_checkpoints", "Memory segments flushed to a file"),
            "fold": self._counter("fpindex_memory_merges", "Merges of memory segments"),
            "merge": self._counter("fpindex_file_merges", "Merges of file segments"),
        }

    def _counter(self, name: str, documentation: str) -> Counter:
        return Counter(name, documentation, ["index"], registry=self.registry)

    def searched(
        self, index: str, hits: int, seconds: float, postings_read: NDArray[np.int64]
    ) -> None:
        """One search: its hits, time, and the postings it read per distinct query term."""
        self.searches.labels(index).inc()
        (self.search_hits if hits else self.search_misses).labels(index).inc()
        self.search_duration.labels(index).observe(seconds)
        if len(postings_read):
            self.scanned_docs.labels(index).observe(float(postings_read.mean()))

    def maintained(self, index: str, kind: str, seconds: float) -> None:
        """A store's flush, memory fold or file merge took `seconds` (a MergeObserver)."""
        self.merge_duration.labels(index, kind).observe(seconds)
        if kind in self._maintenance:
            self._maintenance[kind].labels(index).inc()

    def watch(self, stores: Callable[[], Iterable[tuple[str, IndexStore]]]) -> None:
        self.registry.register(_StoreCollector(stores))


class _StoreCollector(Collector):
    def __init__(self, stores: Callable[[], Iterable[tuple[str, IndexStore]]]) -> None:
        self._stores = stores

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauges = {
            "segments": GaugeMetricFamily(
                "fpindex_segment_count", "Segments a search visits", labels=["index", "kind"]
            ),
            "memory": GaugeMetricFamily(
                "fpindex_memory_segment_size_bytes",
                "Bytes held by in-memory segments",
                labels=["index"],
            ),
            "file": GaugeMetricFamily(
                "fpindex_file_segment_size_bytes", "Bytes of file segments", labels=["index"]
            ),
            "docs": GaugeMetricFamily("fpindex_document_count", "Live documents", labels=["index"]),
            "upstream_docs": GaugeMetricFamily(
                "fpindex_docs", "Live documents (upstream's name)", labels=["index"]
            ),
            "version": GaugeMetricFamily(
                "fpindex_version", "Version of the last applied update", labels=["index"]
            ),
            "wal": GaugeMetricFamily(
                "fpindex_wal_size_bytes", "Bytes of write-ahead log on disk", labels=["index"]
            ),
            "ready": GaugeMetricFamily(
                "fpindex_index_ready",
                "1 while the index serves; 0 while it loads at start or refuses as corrupt",
                labels=["index"],
            ),
            "corrupt": GaugeMetricFamily(
                "fpindex_index_corrupt",
                "1 while the index refuses to serve because its files are damaged",
                labels=["index"],
            ),
        }
        for name, store in self._stores():
            gauges["corrupt"].add_metric([name], int(store.corruption is not None))
            gauges["ready"].add_metric([name], int(store.ready))
            if not store.ready:
                continue
            stats = store.stats()
            gauges["segments"].add_metric([name, "memory"], stats.memory_segments)
            gauges["segments"].add_metric([name, "file"], stats.file_segments)
            gauges["memory"].add_metric([name], stats.memory_bytes)
            gauges["file"].add_metric([name], stats.file_bytes)
            gauges["docs"].add_metric([name], stats.num_docs)
            gauges["upstream_docs"].add_metric([name], stats.num_docs)
            gauges["version"].add_metric([name], store.version)
            gauges["wal"].add_metric([name], stats.wal_bytes)
        yield from gauges.values()
