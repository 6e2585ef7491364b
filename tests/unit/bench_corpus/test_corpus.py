"""bench/corpus.py: statistics measured from fingerprints, and fingerprints generated from them.

The clips here are hash sequences built in the test (a shared pool of popular terms, runs of
repeated hashes), so no audio tool is needed; `bench/corpus.py build` feeds `measure` the same
NPZ layout from fpcalc.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from acoustid_stack.errors import UserError
from acoustid_stack.fingerprint.query import QUERY_LENGTH, SILENCE_HASH, extract_query

BENCH = Path(__file__).resolve().parents[3] / "bench"
sys.path.insert(0, str(BENCH))
import corpus  # noqa: E402

FINGERPRINTS = 96
POPULAR = np.arange(1, 41, dtype=np.uint32) << np.uint32(12)  # 40 terms shared by many songs


def _song(rng: np.random.Generator) -> np.ndarray:
    """A hash sequence in runs, up to a third of its distinct values from the popular pool."""
    distinct = int(rng.integers(60, 250))
    own = rng.integers(1 << 16, 1 << 28, size=distinct, dtype=np.uint32) << np.uint32(4)
    popular = min(distinct // 3, POPULAR.size)
    own[:popular] = rng.choice(POPULAR, size=popular, replace=False)
    runs = rng.integers(1, 4, size=distinct)
    return np.repeat(own, runs) | rng.integers(0, 16, size=runs.sum(), dtype=np.uint32)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    rng = np.random.default_rng(1)
    songs = [_song(rng) for _ in range(FINGERPRINTS)]
    variants = [s.copy() if i % 4 == 0 else np.zeros(0, np.uint32) for i, s in enumerate(songs)]
    for v in variants[::4]:
        v[::2] ^= np.uint32(1 << 20)  # half the hashes of a copy change above the mask
    path = tmp_path_factory.mktemp("corpus") / corpus.CLIPS_FILE
    np.savez_compressed(
        path,
        kinds=np.zeros(FINGERPRINTS, np.uint8),
        lengths=np.array([s.size for s in songs]),
        hashes=np.concatenate(songs),
        variant_lengths=np.array([v.size for v in variants]),
        variant_hashes=np.concatenate(variants),
    )
    return path, songs


@pytest.fixture(scope="module")
def stats_file(clips: tuple[Path, list[np.ndarray]]) -> Path:
    path, _ = clips
    target = path.parent / "stats.npz"
    corpus.measure(path, target)
    corpus.fit(target)
    return target


def test_measure_counts_the_query_terms_of_every_fingerprint(
    clips: tuple[Path, list[np.ndarray]], stats_file: Path
) -> None:
    _, songs = clips
    queries = [extract_query(s).view(np.uint32) for s in songs]
    terms, counts = np.unique(np.concatenate(queries), return_counts=True)
    with np.load(stats_file) as stats:
        head = zip(stats["head_terms"].tolist(), stats["head_counts"].tolist(), strict=True)
        assert sorted(head) == [
            (int(t), int(c)) for t, c in zip(terms, counts, strict=True) if c >= 2
        ]
        assert int(stats["hapax"]) == int((counts == 1).sum())
        assert stats["query_lengths"].tolist() == [q.size for q in queries]
        assert stats["lengths"].tolist() == [s.size for s in songs]
        # the copies keep the terms of their unchanged hashes only
        assert 0 < float(stats["same_song_kept"].max()) < 1
        assert stats["heaps_measured"][-1] == terms.size


def test_measure_finds_the_most_terms_each_song_shares_with_another(
    clips: tuple[Path, list[np.ndarray]], stats_file: Path
) -> None:
    _, songs = clips
    queries = [set(extract_query(s).tolist()) for s in songs]
    expected = [
        max(len(q & other) for j, other in enumerate(queries) if j != i)
        for i, q in enumerate(queries)
    ]
    with np.load(stats_file) as stats:
        assert stats["unrelated_max_shared"].tolist() == expected


def test_generated_terms_are_distinct_masked_and_measured_lengths(stats_file: Path) -> None:
    generated = corpus.Corpus.load(stats_file)
    terms = generated.query_terms(2000, seed=5, chunk=300)
    measured = set(generated.stats["query_lengths"].tolist())
    lengths = np.diff(terms.offsets)
    assert set(lengths.tolist()) <= measured
    assert all(np.unique(terms.row(i)).size == lengths[i] for i in range(len(terms)))
    assert not (terms.flat & np.uint32(15)).any()  # the low nibble is masked off, as a query's


def test_generated_terms_follow_the_measured_popularity(stats_file: Path) -> None:
    generated = corpus.Corpus.load(stats_file)
    terms = generated.query_terms(20_000, seed=5)
    # the popular pool dominates the head; each of its terms is in a sizeable share of songs
    share = np.isin(terms.flat, POPULAR).sum() / terms.flat.size
    real = generated.stats["head_counts"][np.isin(generated.stats["head_terms"], POPULAR)].sum()
    real_share = real / generated.stats["query_lengths"].sum()
    assert share == pytest.approx(real_share, rel=0.1)
    # and the tail is mostly terms no measured song had
    assert np.isin(terms.flat, generated.head_terms, invert=True).mean() == pytest.approx(
        generated.tail_mass, rel=0.1
    )


def test_same_seed_same_corpus(stats_file: Path) -> None:
    generated = corpus.Corpus.load(stats_file)
    first, again = generated.query_terms(500, seed=3), generated.query_terms(500, seed=3)
    other = generated.query_terms(500, seed=4)
    assert np.array_equal(first.flat, again.flat)
    assert not np.array_equal(first.flat[:1000], other.flat[:1000])


def test_generated_fingerprints_have_measured_lengths_and_queries(stats_file: Path) -> None:
    generated = corpus.Corpus.load(stats_file)
    fingerprints = generated.fingerprints(200, seed=9)
    assert {f.size for f in fingerprints} <= set(generated.stats["lengths"].tolist())
    assert all(f.dtype == np.uint32 and not (f == SILENCE_HASH).any() for f in fingerprints)
    queries = [extract_query(f).view(np.uint32) for f in fingerprints]
    assert all(0 < q.size <= QUERY_LENGTH for q in queries)
    # their query terms are as popular as query_terms' (the template's head terms)
    flat = np.concatenate(queries)
    popular = generated.query_terms(2000, seed=9).flat
    assert np.isin(flat, POPULAR).mean() == pytest.approx(np.isin(popular, POPULAR).mean(), rel=0.2)
    # hashes repeat in runs, as measured: fewer distinct terms than hashes
    assert np.mean([np.unique(f & np.uint32(0xFFFFFFF0)).size / f.size for f in fingerprints]) < 0.8


def test_degrade_keeps_the_requested_share(stats_file: Path) -> None:
    generated = corpus.Corpus.load(stats_file)
    row = generated.query_terms(1, seed=1).row(0)
    noisy = generated.degrade(row, 0.7, np.random.default_rng(0))
    assert noisy.size == row.size
    assert np.isin(noisy, row).sum() >= round(0.7 * row.size)


def test_compare_prints_measured_and_generated_rows(stats_file: Path) -> None:
    text = corpus.compare(corpus.Corpus.load(stats_file), n=3000, target=10_000)
    assert f"measured, {FINGERPRINTS} fps" in text
    assert "generated, 3000 fps" in text


def test_measuring_without_the_audio_tools_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(corpus.shutil, "which", lambda _name: None)
    with pytest.raises(UserError, match="fpcalc, sox, espeak-ng: apt-get install"):
        corpus.Corpus.load_or_build(tmp_path / "cache", stats=tmp_path / "stats.npz")


def test_index_bench_help_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "index_bench.py"), "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "realistic" in done.stdout
