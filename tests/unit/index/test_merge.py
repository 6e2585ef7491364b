from __future__ import annotations

import numpy as np

from acoustid_stack.index.memory import MemorySegment
from acoustid_stack.index.merge import MergePolicy, merge_segments, merged_chunks, plan_merge
from acoustid_stack.index.segment import unmix


def test_tiered_policy_merges_runs_of_same_size_class_only() -> None:
    policy = MergePolicy(flush_docs=100, tier_factor=4, max_segments=8)
    assert policy.pick_file_merge([1000, 100, 100, 100], compact=False) is None
    assert policy.pick_file_merge([1000, 100, 100, 100, 100], compact=False) == (1, 5)
    assert policy.pick_file_merge([5000, 100], compact=True) == (0, 2)
    sizes = [6400, 1600, 400, 1000, 100, 3000, 100, 50, 100]
    start, stop = policy.pick_file_merge(sizes, compact=False) or (0, 0)
    assert stop - start == 2  # above max_segments: the two smallest neighbours


def test_merge_drops_tombstoned_documents_and_keeps_the_newest_copy() -> None:
    def segment(segment_id: int, version: int, docs: dict[int, list[int]]) -> MemorySegment:
        return MemorySegment.from_documents(
            segment_id=segment_id,
            version=version,
            ids=list(docs),
            hashes=[np.array(h, np.uint32) for h in docs.values()],
        )

    old = segment(1, 1, {1: [10, 20], 2: [20, 30], 3: [40]})
    new = segment(2, 2, {2: [50], 4: [10]})
    old.mark_deleted(np.array([2, 3], np.uint32))
    merged = merge_segments([old, new], [old.deleted, new.deleted])
    assert merged.docs.tolist() == [1, 2, 4]
    assert merged.versions.tolist() == [1, 2, 2]
    terms = unmix(merged.hashes)
    pairs = sorted(zip(terms.tolist(), merged.docs[merged.ords].tolist(), strict=True))
    assert pairs == [(10, 1), (10, 4), (20, 1), (50, 2)]


def test_a_merge_streams_in_chunks_of_bounded_size() -> None:
    rng = np.random.default_rng(6)
    segments = [
        MemorySegment.from_documents(
            segment_id=n,
            version=n,
            ids=list(range(n * 1000, n * 1000 + 500)),
            hashes=[rng.integers(0, 2**22, 40, dtype=np.uint32) for _ in range(500)],
        )
        for n in range(1, 5)
    ]
    segments[0].mark_deleted(np.arange(1000, 1100, dtype=np.uint32))
    deleted = [s.deleted for s in segments]
    plan = plan_merge(segments, deleted)
    chunks = list(merged_chunks(segments, plan, chunk_postings=2000))
    sizes = [len(h) for h, _ in chunks]
    assert len(chunks) >= plan.num_postings // 2000
    assert max(sizes) <= 2 * 2000
    whole = merge_segments(segments, deleted, chunk_postings=10**9)
    assert np.concatenate([h for h, _ in chunks]).tolist() == whole.hashes.tolist()
    assert np.concatenate([o for _, o in chunks]).tolist() == whole.ords.tolist()
    live = [~s.deleted[(s.keys & np.uint64(0xFFFFFFFF)).astype(np.intp)] for s in segments]
    assert sum(sizes) == sum(int(k.sum()) for k in live)
