"""Prometheus metrics of the index server, with the seed's `fpindex_*` names.

Durations are observed where the work happens; sizes and counts are read from the
stores at scrape time, so they are never stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from acoustid_stack.index.store import IndexStore

_FAST = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
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
            "wal": GaugeMetricFamily(
                "fpindex_wal_size_bytes", "Bytes of write-ahead log on disk", labels=["index"]
            ),
            "corrupt": GaugeMetricFamily(
                "fpindex_index_corrupt",
                "1 while the index refuses to serve because its files are damaged",
                labels=["index"],
            ),
        }
        for name, store in self._stores():
            gauges["corrupt"].add_metric([name], int(store.corruption is not None))
            if not store.ready:
                continue
            stats = store.stats()
            gauges["segments"].add_metric([name, "memory"], stats.memory_segments)
            gauges["segments"].add_metric([name, "file"], stats.file_segments)
            gauges["memory"].add_metric([name], stats.memory_bytes)
            gauges["file"].add_metric([name], stats.file_bytes)
            gauges["docs"].add_metric([name], stats.num_docs)
            gauges["wal"].add_metric([name], stats.wal_bytes)
        yield from gauges.values()
