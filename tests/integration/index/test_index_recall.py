"""Recall on real fingerprints: `fpcalc` on generated audio, `extract_query` terms (issue 15)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from acoustid_stack.fingerprint.audio import fpcalc, write_chords
from acoustid_stack.fingerprint.query import QUERY_MASK, extract_query
from acoustid_stack.index.interfaces import Insert, SearchOptions
from acoustid_stack.index.merge import MergePolicy
from acoustid_stack.index.segment import FileSegment
from acoustid_stack.index.store import IndexStore

FILES = 20
#: documents cut from each 120 s fingerprint (fpcalc's default length), ~12 s each
PER_FILE = 10
KEEP = 0.7
LAZY = MergePolicy(idle_flush=3600, idle_compact=3600, max_memory_age=3600)


def real_documents(directory: Path) -> dict[int, np.ndarray]:
    """FILES * PER_FILE documents: the query terms of consecutive pieces of real
    fingerprints."""

    def hashes(seed: int) -> list[int]:
        audio = write_chords(directory / f"{seed}.wav", seed=seed, seconds=120)
        raw: list[int] = fpcalc(audio, raw=True)["fingerprint"]
        audio.unlink()
        return raw

    with ThreadPoolExecutor(2) as pool:
        fingerprints = list(pool.map(hashes, range(100, 100 + FILES)))
    documents = {}
    for raw in fingerprints:
        for piece in np.array_split(np.array(raw, dtype=np.uint32), PER_FILE):
            documents[len(documents) + 1] = extract_query(piece).view(np.uint32)
    return documents


def degraded(terms: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """70 % of the terms kept, the others replaced by random 28-bit terms."""
    kept = terms[rng.random(len(terms)) < KEEP]
    noise = rng.integers(0, 2**32, len(terms) - len(kept), dtype=np.uint32) & np.uint32(QUERY_MASK)
    return np.concatenate([kept, noise])


def test_degraded_real_queries_find_their_document_first(tmp_path: Path) -> None:
    documents = real_documents(tmp_path)
    assert min(len(t) for t in documents.values()) >= 60
    store = IndexStore.create(tmp_path / "i", policy=LAZY)
    store.open()
    store.update([Insert(i, terms) for i, terms in documents.items()])
    store.checkpoint()
    (segment,) = store.segments()
    assert isinstance(segment, FileSegment)
    assert segment.layout.shift == 4  # 28-bit terms

    rng = np.random.default_rng(0)
    first = [
        [h.id for h in store.search(degraded(terms, rng), SearchOptions(limit=1))]
        for terms in documents.values()
    ]
    found = sum(hits == [doc] for hits, doc in zip(first, documents, strict=True))
    assert found >= 0.99 * len(documents)
