"""Merging segments: which to merge (policy) and how (tombstones dropped, ordinals remapped).

Policy, chosen so a search visits few segments without rewriting data endlessly:

* memory segments (one per update batch) are size-tiered like file segments (below),
  so a burst of small batches costs O(log) folds per posting, not one per batch;
* memory is flushed to a file segment at `flush_docs` documents, after `idle_flush`
  seconds without writes, or when its oldest data is `max_memory_age` seconds old;
* file segments are size-tiered: `tier_factor` neighbours of the same size class are
  merged into one of the next class, so a posting is rewritten log_T(N / flush_docs)
  times and there are at most (T - 1) segments per class;
* after `idle_compact` seconds without writes everything is merged into one file
  segment, which is the state a read-mostly index spends its life in;
* `max_segments` is a hard bound: above it the two smallest neighbours are merged;
* a compaction also rewrites a lone FPSEG001 segment (legacy.py) into the current format.

How: every segment orders its postings by (mixed term hash, ordinal), so a merge walks
the hash space range by range, `chunk_postings` postings at a time, and the writer
streams each range into the new file (segment.py): memory stays one chunk plus a few
bytes per document, whatever the size of the merge.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from acoustid_stack.index.segment import HASH_SPACE, U32, U64, Postings, Segment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MergePolicy:
    flush_docs: int = 65536
    idle_flush: float = 2.0
    max_memory_age: float = 60.0
    idle_compact: float = 5.0
    tier_factor: int = 4
    max_segments: int = 8
    #: postings a merge holds in memory at a time (see merged_chunks)
    chunk_postings: int = 1 << 20

    def size_class(self, docs: int, base: int) -> int:
        return int(math.log(max(docs, base) / base, self.tier_factor))

    def pick_tier(self, sizes: Sequence[int], *, base: int) -> tuple[int, int] | None:
        """The newest run of `tier_factor` neighbours of one size class, or None."""
        classes = [self.size_class(s, base) for s in sizes]
        stop = len(sizes)
        while stop > 0:
            start = stop - 1
            while start > 0 and classes[start - 1] == classes[stop - 1]:
                start -= 1
            if stop - start >= self.tier_factor:
                return (start, stop)
            stop = start
        return None

    def pick_file_merge(self, sizes: Sequence[int], *, compact: bool) -> tuple[int, int] | None:
        """A slice [start, stop) of file segments (oldest first) to merge, or None."""
        if len(sizes) < 2:
            return None
        if compact:
            return (0, len(sizes))
        tier = self.pick_tier(sizes, base=self.flush_docs)
        if tier is None and len(sizes) > self.max_segments:
            pair = min(range(len(sizes) - 1), key=lambda i: sizes[i] + sizes[i + 1])
            return (pair, pair + 2)
        return tier


@dataclass
class MergePlan:
    """The documents of a merge's output and where each input's documents go in it."""

    docs: U32
    versions: U64
    #: per input, the new ordinal of each of its ordinals (-1: dropped)
    remaps: list[NDArray[np.int32]]
    #: postings of the inputs (an upper bound of the output's)
    num_postings: int
    #: trailing zero bits every input term has (a lower bound of the output's)
    trailing_zeros: int


@dataclass
class MergedPostings:
    """Live documents of the inputs and their postings sorted by (hash, new ordinal)."""

    docs: U32
    versions: U64
    hashes: U32
    ords: U32


def plan_merge(segments: Sequence[Segment], deleted: Sequence[np.ndarray]) -> MergePlan:
    """Merge `segments` (oldest first) as of the tombstones `deleted[i]` of each.

    Tombstones are applied here: deleted documents (and so their postings) are dropped. A
    document live in two inputs (only possible mid-update) keeps its newest copy.
    """
    live_docs = [seg.docs[~dead] for seg, dead in zip(segments, deleted, strict=True)]
    live_versions = [seg.versions[~dead] for seg, dead in zip(segments, deleted, strict=True)]
    all_docs = np.concatenate(live_docs) if live_docs else np.empty(0, np.uint32)
    all_versions = np.concatenate(live_versions) if live_versions else np.empty(0, np.uint64)
    # newest first, so np.unique keeps the newest copy of a duplicated id
    docs, first = np.unique(all_docs[::-1], return_index=True)
    versions = all_versions[::-1][first]
    owner = np.repeat(np.arange(len(segments)), [len(d) for d in live_docs])[::-1][first]
    remaps = []
    for i, seg in enumerate(segments):
        remap = np.full(seg.num_docs, -1, dtype=np.int32)
        mine = owner == i
        remap[np.searchsorted(seg.docs, docs[mine])] = np.flatnonzero(mine)
        remaps.append(remap)
    return MergePlan(
        docs=docs.astype(np.uint32),
        versions=versions.astype(np.uint64),
        remaps=remaps,
        num_postings=sum(seg.num_postings for seg in segments),
        trailing_zeros=min((seg.trailing_zeros for seg in segments), default=32),
    )


def merged_chunks(
    segments: Sequence[Segment], plan: MergePlan, *, chunk_postings: int
) -> Iterator[Postings]:
    """(hashes, ords) of the merged postings in (hash, ordinal) order, consecutive chunks.

    Each chunk is one range of the hash space, sized for about `chunk_postings` postings
    (hashes are mixed, so ranges of equal width hold about as many; only a term held by
    more documents than that makes its range larger). Memory is this chunk's, never the
    whole merge's.
    """
    parts = max(1, -(-plan.num_postings // max(1, chunk_postings)))
    width = HASH_SPACE >> (parts - 1).bit_length()
    for low in range(0, HASH_SPACE, width):
        keys = []
        for segment, remap in zip(segments, plan.remaps, strict=True):
            hashes, ords = segment.postings_between(low, low + width)
            new_ords = remap[ords]
            del ords
            keep = new_ords >= 0
            if not keep.all():
                hashes, new_ords = hashes[keep], new_ords[keep]
            del keep
            key = hashes.astype(np.uint64)
            del hashes
            key <<= np.uint64(32)
            key |= new_ords.astype(np.uint32)
            keys.append(key)
            del key, new_ords
        merged = np.concatenate(keys) if keys else np.empty(0, np.uint64)
        del keys
        merged.sort()
        yield (merged >> np.uint64(32)).astype(np.uint32), merged.astype(np.uint32)


def merge_segments(
    segments: Sequence[Segment], deleted: Sequence[np.ndarray], *, chunk_postings: int = 1 << 20
) -> MergedPostings:
    """The whole merge in memory (memory segments are folded this way)."""
    plan = plan_merge(segments, deleted)
    chunks = list(merged_chunks(segments, plan, chunk_postings=chunk_postings))
    return MergedPostings(
        docs=plan.docs,
        versions=plan.versions,
        hashes=np.concatenate([h for h, _ in chunks]),
        ords=np.concatenate([o for _, o in chunks]),
    )


class Maintainable(Protocol):
    def maintain(self) -> bool: ...


class MergeScheduler:
    """Background thread running flushes and merges of every store it is given.

    Failure policy: an error in one merge is logged and retried on the next round; the
    data stays correct meanwhile (searches just visit more segments).
    """

    def __init__(self, stores: Callable[[], Iterable[Maintainable]], *, interval: float = 0.2):
        self._stores = stores
        self._interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fpindex-merger", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            busy = False
            for store in list(self._stores()):
                if self._stop.is_set():
                    return
                try:
                    busy = store.maintain() or busy
                except Exception:
                    log.exception("index maintenance failed; retrying next round")
            if not busy:
                self._wake.wait(self._interval)
                self._wake.clear()
