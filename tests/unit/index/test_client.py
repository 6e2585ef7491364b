from __future__ import annotations

import numpy as np

from acoustid_stack.index.client import HashRing, merge_hits
from acoustid_stack.index.interfaces import SearchHit, SearchOptions


def test_ring_placement_is_stable_and_balanced() -> None:
    shards = [f"http://127.0.0.1:{6081 + i}" for i in range(3)]
    ids = np.arange(1, 30_001)
    owners = HashRing(shards).owner_indexes(ids)
    assert (owners == HashRing(list(shards)).owner_indexes(ids)).all()
    counts = np.bincount(owners, minlength=3)
    assert counts.min() > 0.25 * len(ids)


def test_adding_a_shard_moves_only_ids_to_the_new_shard() -> None:
    shards = [f"http://127.0.0.1:{6081 + i}" for i in range(3)]
    ids = np.arange(1, 30_001)
    before = np.array(HashRing(shards).shards)[HashRing(shards).owner_indexes(ids)]
    grown = HashRing([*shards, "http://127.0.0.1:7000"])
    after = np.array(grown.shards)[grown.owner_indexes(ids)]
    moved = before != after
    assert (after[moved] == "http://127.0.0.1:7000").all()
    assert 0.15 < moved.mean() < 0.35


def test_merged_hits_keep_the_best_score_per_id_and_cut_by_score_pct() -> None:
    hits = [SearchHit(1, 50), SearchHit(2, 4), SearchHit(3, 30), SearchHit(1, 20), SearchHit(4, 6)]
    merged = merge_hits(hits, SearchOptions(limit=2, score_pct=10))
    assert merged == [SearchHit(1, 50), SearchHit(3, 30)]
    assert merge_hits(hits, SearchOptions(limit=10, score_pct=10))[-1] == SearchHit(4, 6)
