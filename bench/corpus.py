"""A realistic fingerprint corpus for the benches (issue 15): measured, then generated.

Uniformly random terms flatter an index (every posting list has the same short length) and
hid its collapse on low-bit terms. This module measures what real `fpcalc` output looks like
and generates any number of fingerprints that look the same to an index:

1. **Measure** (`build`, needs `fpcalc` and `espeak-ng`): ~2,400 generated clips of 30-120 s
   (melodies, chords, drums, noise, espeak-ng speech, mixes; random tempo, timbre and sox
   effects), fingerprinted with `fpcalc -raw`; every 4th clip also as a degraded copy (noise,
   EQ, gain, a cut start) to measure how many query terms two copies of one song share. The
   query terms are `extract_query`'s, as the worker indexes and the api searches them.
2. **Summarise** into a small statistics file (`bench/data/corpus-stats.npz`, committed, so the
   benches need neither tool): the terms seen in >= 2 fingerprints with their counts, the
   number seen once, per-2-bit-field frequencies of the terms, per-fingerprint lengths and the
   repetition structure of the hash sequences, same-song overlaps.
3. **Generate** (`Corpus.fingerprints`, `Corpus.query_terms`): term popularity is the measured
   head (real terms, real relative frequencies) followed by a Zipf tail whose exponent is
   fitted to the measured rank-frequency curve, extended over the 28-bit term space; tail
   terms are drawn field by field from the measured 2-bit-field frequencies, so their bits are
   as skewed as real ones. `compare` prints generated vs measured posting-length quantiles.

    python bench/corpus.py build          # measure (10-15 min on 2 cores), writes the stats
    python bench/corpus.py compare        # generated vs measured posting lengths
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from acoustid_stack.errors import UserError
from acoustid_stack.fingerprint.audio import SAMPLE_RATE, fpcalc
from acoustid_stack.fingerprint.query import (
    QUERY_LENGTH,
    QUERY_MASK,
    QUERY_START,
    SILENCE_HASH,
    extract_query,
)

BENCH = Path(__file__).resolve().parent
STATS_FILE = BENCH / "data" / "corpus-stats.npz"
DEFAULT_CACHE = Path.home() / ".cache" / "acoustid-stack" / "bench-corpus"
CLIPS_FILE = "clips-v1.npz"
DEFAULT_CLIPS = 2400
VARIANT_EVERY = 4
KINDS = ("melody", "chords", "drums", "noise", "speech", "mix")
FIELDS = 14  # a 28-bit term is 14 two-bit classifier outputs
UNUSED = np.uint32(0xFFFFFFFF)  # never a query term: the mask clears the low nibble
#: vocabulary growth is measured at these eighths of the real set
HEAPS_SIZES = (1, 2, 4, 8)
UINT32 = np.uint32


# --- audio -------------------------------------------------------------------------------------


def _require_tools() -> None:
    missing = [t for t in ("fpcalc", "sox", "espeak-ng") if shutil.which(t) is None]
    if missing:
        raise UserError(
            f"measuring the corpus needs {', '.join(missing)}: apt-get install -y "
            "libchromaprint-tools sox espeak-ng (or use the committed bench/data/corpus-stats.npz)"
        )


def _write_wav(path: Path, signal: np.ndarray) -> None:
    peak = float(np.max(np.abs(signal))) or 1.0
    samples = (signal / peak * 24000).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.tobytes())


def _voice(rng: np.random.Generator, freq: float, n: int) -> np.ndarray:
    """One note of a random timbre: sine, square, saw, organ, pluck or FM."""
    t = np.arange(n) / SAMPLE_RATE
    kind = rng.integers(0, 6)
    phase = 2 * np.pi * freq * t
    if kind == 0:
        tone = np.sin(phase)
    elif kind == 1:
        tone = np.sign(np.sin(phase)) * 0.5
    elif kind == 2:
        tone = 2 * ((freq * t) % 1.0) - 1
    elif kind == 3:
        tone = sum(np.sin(phase * h) / h for h in (1, 2, 3, 4, 6))
    elif kind == 4:
        tone = sum(np.sin(phase * h) * np.exp(-t * 3 * h) / h for h in range(1, 8))
    else:
        tone = np.sin(phase + rng.uniform(1, 5) * np.sin(phase * rng.choice([0.5, 1, 2, 3])))
    attack = max(1, int(SAMPLE_RATE * rng.uniform(0.003, 0.06)))
    envelope = np.exp(-t * rng.uniform(0.5, 8))
    envelope[:attack] *= np.linspace(0, 1, attack)
    return np.asarray(tone * envelope)


def _music(rng: np.random.Generator, seconds: float, chords: bool) -> np.ndarray:
    total = int(seconds * SAMPLE_RATE)
    beat = 60 / rng.uniform(60, 200)
    scale = [
        [0, 2, 4, 5, 7, 9, 11],
        [0, 2, 3, 5, 7, 8, 10],
        [0, 2, 4, 7, 9],
        list(range(12)),
    ][rng.integers(0, 4)]
    root = rng.integers(40, 64)
    out = np.zeros(total + SAMPLE_RATE * 4)
    at = 0
    while at < total:
        n = int(beat * rng.choice([0.25, 0.5, 1, 1, 2, 4]) * SAMPLE_RATE)
        degrees = rng.integers(0, len(scale) * 2, size=rng.integers(2, 5) if chords else 1)
        for d in degrees:
            midi = root + 12 * (d // len(scale)) + scale[d % len(scale)]
            freq = 440.0 * 2 ** ((midi - 69) / 12)
            out[at : at + n] += _voice(rng, freq, n) * rng.uniform(0.3, 1)
        at += n
    return out[:total]


def _drums(rng: np.random.Generator, seconds: float) -> np.ndarray:
    total = int(seconds * SAMPLE_RATE)
    step = int(60 / rng.uniform(70, 180) / 4 * SAMPLE_RATE)
    n = step * 2
    t = np.arange(n) / SAMPLE_RATE
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 12)
    snare = (rng.standard_normal(n) * 0.6 + np.sin(2 * np.pi * 190 * t)) * np.exp(-t * 25)
    hat = np.diff(rng.standard_normal(n + 1)) * np.exp(-t * 80) * 0.4
    pattern = rng.random((3, 16)) < [[0.35], [0.25], [0.6]]
    out = np.zeros(total + n)
    for i, at in enumerate(range(0, total, step)):
        for sound, on in zip((kick, snare, hat), pattern[:, i % 16], strict=True):
            if on:
                out[at : at + n] += sound * rng.uniform(0.6, 1)
    return out[:total]


def _noise(rng: np.random.Generator, seconds: float) -> np.ndarray:
    total = int(seconds * SAMPLE_RATE)
    white = rng.standard_normal(total)
    colour = rng.integers(0, 3)
    if colour == 1:  # brown
        white = np.cumsum(white)
        white -= np.convolve(white, np.ones(512) / 512, mode="same")
    elif colour == 2:  # roughly pink: sum of octave-smoothed noises
        white = sum(
            np.convolve(rng.standard_normal(total), np.ones(k) / np.sqrt(k), mode="same")
            for k in (1, 4, 16, 64)
        )
    swell = 1 + 0.8 * np.sin(2 * np.pi * rng.uniform(0.05, 2) * np.arange(total) / SAMPLE_RATE)
    return np.asarray(white * swell)


SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in ("a", "e", "i", "o", "u", "ei", "ou")]
VOICES = ["en", "en-us", "de", "fr", "es", "it", "pl", "pt", "nl", "sv", "cs", "ru", "fi", "hu"]


def _speech(rng: np.random.Generator, seconds: float, tmp: Path) -> np.ndarray:
    words = [
        "".join(rng.choice(SYLLABLES, size=rng.integers(1, 4))) for _ in range(int(seconds * 3.5))
    ]
    voice = f"{rng.choice(VOICES)}+{rng.choice(['m1', 'm3', 'f2', 'f4', 'klatt', 'croak'])}"
    raw = tmp / "speech-raw.wav"
    resampled = tmp / "speech.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(raw), "-v", voice, "-s", str(rng.integers(110, 260)),
         "-p", str(rng.integers(10, 90)), "-g", str(rng.integers(0, 12)), " ".join(words)],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        ["sox", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", str(resampled)],
        check=True, capture_output=True,
    )  # fmt: skip
    with wave.open(str(resampled)) as f:
        signal = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").astype(float)
    total = int(seconds * SAMPLE_RATE)
    return np.resize(signal, total) if signal.size else np.zeros(total)


def _effects(rng: np.random.Generator) -> list[str]:
    """A random sox effect chain: tempo, pitch, EQ, reverb, distortion."""
    chain: list[str] = []
    if rng.random() < 0.4:
        chain += ["tempo", f"{rng.uniform(0.8, 1.25):.3f}"]
    if rng.random() < 0.3:
        chain += ["pitch", str(rng.integers(-400, 400))]
    if rng.random() < 0.4:
        chain += ["lowpass", str(rng.integers(1500, 4000))]
    if rng.random() < 0.3:
        chain += ["highpass", str(rng.integers(80, 800))]
    if rng.random() < 0.3:
        chain += ["reverb", str(rng.integers(20, 90))]
    if rng.random() < 0.2:
        chain += ["overdrive", str(rng.integers(5, 30))]
    return chain


def _sox(source: Path, target: Path, chain: list[str]) -> None:
    subprocess.run(
        ["sox", "-D", str(source), "-r", str(SAMPLE_RATE), str(target), *chain, "gain", "-n", "-3"],
        check=True,
        capture_output=True,
    )


def _clip(seed: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Kind, fpcalc hashes and (every VARIANT_EVERY-th clip) the hashes of a degraded copy."""
    rng = np.random.default_rng([seed, 15])
    kind = seed % len(KINDS)
    seconds = float(rng.uniform(30, 120))
    with tempfile.TemporaryDirectory(prefix="corpus-clip-") as name:
        tmp = Path(name)
        if KINDS[kind] == "melody":
            signal = _music(rng, seconds, chords=False)
        elif KINDS[kind] == "chords":
            signal = _music(rng, seconds, chords=True)
        elif KINDS[kind] == "drums":
            signal = _drums(rng, seconds) + 0.3 * rng.random() * _music(rng, seconds, False)
        elif KINDS[kind] == "noise":
            signal = _noise(rng, seconds)
        elif KINDS[kind] == "speech":
            signal = _speech(rng, seconds, tmp)
        else:
            signal = (
                _speech(rng, seconds, tmp) / 32768 * rng.uniform(0.5, 3)
                + _music(rng, seconds, chords=True) / 3
                + _drums(rng, seconds) * rng.uniform(0, 0.5)
            )
        _write_wav(tmp / "dry.wav", signal)
        _sox(tmp / "dry.wav", tmp / "clip.wav", _effects(rng))
        hashes = np.asarray(fpcalc(tmp / "clip.wav", raw=True)["fingerprint"], dtype=np.int64)
        variant = np.zeros(0, dtype=np.int64)
        if seed % VARIANT_EVERY == 0:
            with wave.open(str(tmp / "clip.wav")) as f:
                clean = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").astype(float)
            noisy = clean + rng.standard_normal(clean.size) * clean.std() * 10 ** (
                -rng.uniform(30, 45) / 20
            )
            # a different lead-in, cut at a multiple of chromaprint's 1365-sample frame step
            # pattern so the frames stay aligned, as two rips of one master are
            _write_wav(tmp / "noisy.wav", noisy[1365 * int(rng.integers(0, 12)) :])
            eq = ["equalizer", str(rng.integers(300, 3000)), "1q", f"{rng.uniform(-3, 3):.1f}"]
            _sox(tmp / "noisy.wav", tmp / "variant.wav", eq)
            variant = np.asarray(
                fpcalc(tmp / "variant.wav", raw=True)["fingerprint"], dtype=np.int64
            )
    return kind, hashes.astype(UINT32), variant.astype(UINT32)


def build_clips(path: Path, count: int, processes: int = 2) -> None:
    """Fingerprint `count` generated clips into `path` (an NPZ of concatenated hashes)."""
    _require_tools()
    kinds, fps, variants = [], [], []
    started = time.monotonic()
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        for i, (kind, hashes, variant) in enumerate(pool.imap(_clip, range(count), chunksize=4)):
            kinds.append(kind)
            fps.append(hashes)
            variants.append(variant)
            if (i + 1) % 100 == 0:
                print(f"  {i + 1}/{count} clips, {time.monotonic() - started:.0f} s", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        kinds=np.array(kinds, dtype=np.uint8),
        lengths=np.array([len(f) for f in fps], dtype=np.int64),
        hashes=np.concatenate(fps),
        variant_lengths=np.array([len(v) for v in variants], dtype=np.int64),
        variant_hashes=np.concatenate(variants),
    )


def _split(flat: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    return np.split(flat, np.cumsum(lengths)[:-1])


def _queries(fingerprints: list[np.ndarray]) -> list[np.ndarray]:
    return [extract_query(f).view(UINT32) for f in fingerprints]


def _structure(hashes: np.ndarray) -> tuple[float, float]:
    """How a hash sequence moves: P(masked hash = previous one) and, among the changes,
    P(it returns to a value seen before) — what makes 120 distinct terms span ~200 hashes."""
    masked = hashes & UINT32(QUERY_MASK)
    changed = masked[1:] != masked[:-1]
    _, first = np.unique(masked, return_index=True)
    is_new = np.zeros(masked.size, dtype=bool)
    is_new[first] = True
    changes = int(changed.sum())
    revisits = int((changed & ~is_new[1:]).sum())
    return 1 - changes / max(1, masked.size - 1), revisits / max(1, changes)


def measure(clips: Path, target: Path) -> None:
    """Summarise the clip fingerprints into the statistics file the generator reads."""
    data = np.load(clips)
    fps = _split(data["hashes"], data["lengths"])
    queries = _queries(fps)
    flat = np.concatenate(queries)
    terms, counts = np.unique(flat, return_counts=True)
    head = counts >= 2
    order = np.argsort(-counts[head], kind="stable")
    rank = np.full(terms.size, -1)
    rank[np.flatnonzero(head)[order]] = np.arange(order.size)
    fp_head = [rank[np.searchsorted(terms, q)] for q in queries]
    fields = (flat[:, None] >> (4 + 2 * np.arange(FIELDS, dtype=UINT32))) & UINT32(3)
    field_freq = np.stack([np.bincount(fields[:, k], minlength=4) for k in range(FIELDS)])
    structure = np.array([_structure(f) for f in fps], dtype=np.float32)
    variants = _queries(_split(data["variant_hashes"], data["variant_lengths"]))
    pairs = [(q, v) for q, v in zip(queries, variants, strict=True) if v.size]
    same_song = np.array(
        [np.intersect1d(q, v).size / max(1, q.size) for q, v in pairs], dtype=np.float32
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        target,
        head_terms=terms[head][order],
        head_counts=counts[head][order].astype(np.uint32),
        hapax=np.int64((~head).sum()),
        fp_head=np.concatenate([h[h >= 0] for h in fp_head]).astype(np.uint32),
        fp_head_counts=np.array([int((h >= 0).sum()) for h in fp_head], dtype=np.uint8),
        query_lengths=np.array([q.size for q in queries], dtype=np.uint8),
        lengths=data["lengths"].astype(np.uint16),
        kinds=data["kinds"],
        structure=structure,
        low_nibble=np.bincount((data["hashes"] & UINT32(15)).astype(np.int64), minlength=16),
        field_freq=field_freq,
        same_song_kept=same_song,
        unrelated_max_shared=_max_shared(queries),
        heaps_sizes=np.array(HEAPS_SIZES) * len(queries) // HEAPS_SIZES[-1],
        heaps_measured=np.array(
            [np.unique(np.concatenate(queries[: len(queries) * k // 8])).size for k in HEAPS_SIZES]
        ),
    )


def _max_shared(queries: list[np.ndarray]) -> np.ndarray:
    """For each fingerprint, the most terms it shares with any other one (false-match floor)."""
    flat = np.concatenate(queries)
    rows = np.repeat(np.arange(len(queries)), [q.size for q in queries])
    _, term, counts = np.unique(flat, return_inverse=True, return_counts=True)
    common = counts[term] >= 2  # a term seen once is shared with nobody
    order = np.argsort(term[common], kind="stable")
    docs, groups = rows[common][order], term[common][order]
    shared = np.zeros((len(queries), len(queries)), dtype=np.int32)
    # a term's fingerprints are distinct, so the fancy-indexed += counts every pair once
    for group in np.split(docs, np.flatnonzero(np.diff(groups)) + 1):
        shared[np.ix_(group, group)] += 1
    np.fill_diagonal(shared, 0)
    return shared.max(axis=1).astype(np.uint8)


@dataclass(frozen=True)
class Terms:
    """Query terms of many fingerprints, rows of different lengths (CSR layout)."""

    flat: np.ndarray  # uint32
    offsets: np.ndarray  # int64, len(self) + 1

    def __len__(self) -> int:
        return int(self.offsets.size - 1)

    def row(self, i: int) -> np.ndarray:
        return self.flat[self.offsets[i] : self.offsets[i + 1]]

    @classmethod
    def from_matrix(cls, matrix: np.ndarray) -> Terms:
        rows, width = matrix.shape
        return cls(matrix.reshape(-1), np.arange(rows + 1, dtype=np.int64) * width)

    @classmethod
    def from_rows(cls, rows: list[np.ndarray]) -> Terms:
        lengths = np.array([r.size for r in rows], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        return cls(np.concatenate(rows).astype(UINT32), offsets)


def distinct_rows(
    draw: Callable[[int, np.random.Generator], np.ndarray],
    rows: int,
    width: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """A rows x width matrix of `draw` values, distinct within each row (duplicates redrawn,
    as `extract_query` keeps distinct terms), in random order."""
    block = draw(rows * width, rng).reshape(rows, width)
    while True:
        block.sort(axis=1)
        dup = np.zeros(block.shape, dtype=bool)
        dup[:, 1:] = block[:, 1:] == block[:, :-1]
        if not dup.any():
            return rng.permuted(block, axis=1)
        block[dup] = draw(int(dup.sum()), rng)


def _splitmix(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return np.asarray(x ^ (x >> np.uint64(31)))


class Corpus:
    """Synthetic fingerprints whose terms follow the measured statistics."""

    def __init__(
        self,
        stats: dict[str, np.ndarray],
        tail_exponent: float | None = None,
        template_keep: float | None = None,
    ) -> None:
        self.stats = stats
        self.head_terms = stats["head_terms"].astype(UINT32)
        head_counts = stats["head_counts"].astype(np.float64)
        self.real_docs = int(stats["query_lengths"].size)
        occurrences = float(head_counts.sum() + stats["hapax"])
        #: Good-Turing: the terms seen once estimate the mass of all the rarely seen ones
        self.tail_mass = float(stats["hapax"]) / occurrences
        self.head_cdf = np.cumsum(head_counts) / head_counts.sum()
        field_freq = stats["field_freq"].astype(np.float64)
        cdf = np.cumsum(field_freq / field_freq.sum(axis=1, keepdims=True), axis=1)
        # 256-step inverse CDF per 2-bit field (random byte -> field value), then one table per
        # pair of fields (random 16 bits -> both fields in place), for 7 lookups per term
        field = np.stack(
            [np.searchsorted(c, (np.arange(256) + 0.5) / 256).clip(0, 3) for c in cdf]
        ).astype(UINT32)
        low, high = np.arange(1 << 16) & 255, np.arange(1 << 16) >> 8
        self.pair_lut = np.stack(
            [
                field[2 * k][low] << UINT32(4 + 4 * k) | field[2 * k + 1][high] << UINT32(6 + 4 * k)
                for k in range(FIELDS // 2)
            ]
        )
        self.tail_exponent = (
            tail_exponent if tail_exponent is not None else float(stats["tail_exponent"])
        )
        self.template_keep = (
            template_keep if template_keep is not None else float(stats["template_keep"])
        )
        counts = stats["fp_head_counts"].astype(np.int64)
        self.head_offsets = np.concatenate([[0], np.cumsum(counts)])
        # one spare entry: rows gather at their offset even where they use no head term
        self.fp_head = np.append(stats["fp_head"], 0).astype(np.int64)

    @classmethod
    def load(cls, path: Path = STATS_FILE) -> Corpus:
        with np.load(path) as data:
            return cls({k: data[k] for k in data.files})

    @classmethod
    def load_or_build(cls, cache_dir: Path = DEFAULT_CACHE, stats: Path = STATS_FILE) -> Corpus:
        """The corpus from `stats`, measuring it first (clips cached in `cache_dir`) if absent."""
        if not stats.exists():
            clips = cache_dir / CLIPS_FILE
            if not clips.exists():
                print(f"measuring the corpus: {DEFAULT_CLIPS} clips into {clips}", flush=True)
                build_clips(clips, DEFAULT_CLIPS)
            measure(clips, stats)
            fit(stats)
        return cls.load(stats)

    # -- terms ----------------------------------------------------------------------------------

    def _tail_terms(self, ranks: np.ndarray, salt: int) -> np.ndarray:
        """The term of each tail rank: 14 fields drawn from the measured field frequencies by
        a hash of the rank (the same rank is the same term within one `salt`)."""
        a = _splitmix(ranks.astype(np.uint64) ^ np.uint64(salt))
        bits = np.stack([a, _splitmix(a)], axis=1).view(np.uint16)  # 8 x 16 random bits
        term = self.pair_lut[0][bits[:, 0]]
        for k in range(1, FIELDS // 2):
            term |= self.pair_lut[k][bits[:, k]]
        return term

    def draw(self, size: int, rng: np.random.Generator, salt: int = 0) -> np.ndarray:
        """`size` independent term occurrences from the popularity model."""
        tail = rng.random(size) < self.tail_mass
        out = np.empty(size, dtype=UINT32)
        out[~tail] = self.draw_head(int(size - tail.sum()), rng)
        out[tail] = self.draw_tail(int(tail.sum()), rng, salt)
        return out

    def draw_head(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """Measured terms, by their measured frequencies."""
        picks = np.searchsorted(self.head_cdf, rng.random(size), side="right")
        return np.asarray(self.head_terms[np.minimum(picks, self.head_terms.size - 1)])

    def draw_tail(self, size: int, rng: np.random.Generator, salt: int = 0) -> np.ndarray:
        """Tail terms: a continuous power law over ranks [first, last) by inverse CDF."""
        s, first, last = self.tail_exponent, float(self.head_terms.size + 1), float(1 << 28)
        v = rng.random(size)
        if abs(s - 1) < 1e-9:
            ranks = first * (last / first) ** v
        else:
            lo, hi = first ** (1 - s), last ** (1 - s)
            ranks = (lo + (hi - lo) * v) ** (1 / (1 - s))
        return self._tail_terms(np.floor(ranks), salt)

    def query_terms(self, n: int, seed: int, *, chunk: int = 50_000) -> Terms:
        """Query terms of `n` fingerprints, each modelled on a measured one (its template):
        as many terms, as many of them popular (head) terms, each of the template's own head
        terms kept with probability `template_keep` (so songs that share popular terms in
        the measurement share them here), the other head terms drawn by popularity, the rest
        from the tail; distinct within each fingerprint."""
        rng = np.random.default_rng([seed, 1])
        templates = rng.integers(0, self.real_docs, size=n)
        lengths = self.stats["query_lengths"][templates].astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        flat = np.empty(int(offsets[-1]), dtype=UINT32)
        for first in range(0, n, chunk):
            part = slice(first, min(n, first + chunk))
            block = self._template_rows(templates[part], lengths[part], rng)
            flat[offsets[part.start] : offsets[part.stop]] = block[block != UNUSED]
        return Terms(flat, offsets)

    def _template_rows(
        self, templates: np.ndarray, lengths: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        rows, width = templates.size, int(lengths.max())
        column = np.arange(width)
        heads = np.minimum(self.stats["fp_head_counts"][templates], lengths).astype(np.int64)
        in_head = column < heads[:, None]
        own = self.head_offsets[templates][:, None] + np.where(in_head, column, 0)
        block = np.where(in_head, self.head_terms[self.fp_head[own]], UNUSED)
        fresh = in_head & (rng.random((rows, width)) >= self.template_keep)
        block[fresh] = self.draw_head(int(fresh.sum()), rng)
        tail = ~in_head & (column < lengths[:, None])
        block[tail] = self.draw_tail(int(tail.sum()), rng)
        while True:  # distinct terms: a repeated one is replaced by a tail draw
            block.sort(axis=1)
            dup = np.zeros(block.shape, dtype=bool)
            dup[:, 1:] = (block[:, 1:] == block[:, :-1]) & (block[:, 1:] != UNUSED)
            if not dup.any():
                return rng.permuted(block, axis=1)
            block[dup] = self.draw_tail(int(dup.sum()), rng)

    def degrade(self, terms: np.ndarray, keep: float, rng: np.random.Generator) -> np.ndarray:
        """A query sharing `keep` of `terms`; the others replaced by popularity draws (a noisy
        copy meets common terms, not fresh random ones)."""
        out = terms.copy()
        replace = rng.permutation(out.size)[round(out.size * keep) :]
        out[replace] = self.draw(replace.size, rng, salt=1)
        return out

    # -- full fingerprints ----------------------------------------------------------------------

    def fingerprints(self, n: int, seed: int) -> list[np.ndarray]:
        """`n` raw fingerprints (uint32 hashes, as `fpcalc -raw`), each shaped like a measured
        one: its length and how often the masked hash stays or returns to an earlier value.
        The values `extract_query` takes are a `query_terms` row of the same template; the
        others are tail terms."""
        rng = np.random.default_rng([seed, 2])
        templates = rng.integers(0, self.real_docs, size=n)
        nibble = self.stats["low_nibble"] / self.stats["low_nibble"].sum()
        out = []
        for t in templates:
            size = int(self.stats["lengths"][t])
            stay, revisit = (float(x) for x in self.stats["structure"][t])
            is_stay = rng.random(size) < stay
            is_stay[0] = False
            is_new = ~is_stay & (rng.random(size) >= revisit)
            is_new[0] = True
            seen = np.cumsum(is_new)  # labels so far, including this position's new one
            label = np.where(is_new, seen - 1, (rng.random(size) * seen).astype(np.int64))
            # a stay takes the label of the last position that was not a stay
            label = label[np.maximum.accumulate(np.where(is_stay, 0, np.arange(size)))]
            # the labels extract_query will take, in its order
            window = label[max(0, min(size - QUERY_LENGTH, QUERY_START)) :]
            _, first = np.unique(window, return_index=True)
            query = window[np.sort(first)][:QUERY_LENGTH]
            words = self.draw_tail(int(seen[-1]), rng)
            row = self._template_rows(np.array([t]), np.array([query.size]), rng)[0]
            words[query] = row[row != UNUSED]
            hashes = words[label] | rng.choice(16, size=size, p=nibble).astype(UINT32)
            hashes[hashes == UINT32(SILENCE_HASH)] ^= UINT32(1)
            out.append(hashes)
        return out


def posting_lengths(terms: Terms) -> np.ndarray:
    """The posting-list length of every distinct term."""
    _, counts = np.unique(terms.flat, return_counts=True)
    return np.asarray(counts)


def fit(stats_file: Path) -> tuple[float, float]:
    """Fit the two free parameters of the generator and store them in `stats_file`.

    The tail exponent: a generated corpus grows its vocabulary (distinct terms) as the measured
    one does from 1/8 of the real size to all of it; vocabulary growth is what sets posting
    lengths at sizes we cannot measure. The template keep: a generated corpus of the real size
    (templates drawn with replacement, as at any size) has the measured distribution of the most
    terms a fingerprint shares with another one."""
    with np.load(stats_file) as data:
        stats = {k: data[k] for k in data.files}
    sizes, measured = stats["heaps_sizes"], stats["heaps_measured"].astype(np.float64)
    n = int(sizes[-1])
    best = (np.inf, 1.0)
    for s in np.arange(0.0, 1.6, 0.05):
        terms = Corpus(stats, tail_exponent=float(s), template_keep=0.5).query_terms(n, seed=7)
        grown = np.array([np.unique(terms.flat[: terms.offsets[k]]).size for k in sizes])
        best = min(best, (float(np.sum(np.log(grown / measured) ** 2)), float(s)))
    exponent = best[1]
    real = np.quantile(stats["unrelated_max_shared"], SHARED_QUANTILES)
    best = (np.inf, 1.0)
    for keep in np.arange(0.0, 1.01, 0.1):
        corpus = Corpus(stats, tail_exponent=exponent, template_keep=float(keep))
        shared = _max_shared(_rows(corpus.query_terms(n, seed=7)))
        error = float(np.sum(np.abs(np.quantile(shared, SHARED_QUANTILES) - real) / (real + 1)))
        best = min(best, (error, float(keep)))
    stats["tail_exponent"], stats["template_keep"] = np.float64(exponent), np.float64(best[1])
    np.savez_compressed(stats_file, **stats)
    return exponent, best[1]


QUANTILES = (0.5, 0.9, 0.99, 0.999, 1.0)
SHARED_QUANTILES = (0.5, 0.75, 0.9, 0.99)


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray) -> list[float]:
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order]) / weights.sum()
    picks = np.searchsorted(cumulative, np.array(QUANTILES) - 1e-12).clip(0, values.size - 1)
    return [float(values[order][k]) for k in picks]


def _describe(counts: np.ndarray, docs: int, target: int) -> dict[str, list[float] | float]:
    """Posting lengths: per distinct term, and as met by a query term (occurrence-weighted,
    what a search pays), both also as a share of the documents; `met_at_target` estimates
    the mean length a query term meets at `target` documents (c(c-1) removes sampling noise)."""
    c = counts.astype(np.float64)
    return {
        "terms": float(c.size),
        "per_term": _weighted_quantiles(c, np.ones_like(c)),
        "met": _weighted_quantiles(c, c),
        "met_share": [q / docs for q in _weighted_quantiles(c, c)],
        "met_at_target": 1 + target * float(np.sum(c * (c - 1)) / (docs * c.sum())),
    }


def compare(corpus: Corpus, n: int = 100_000, target: int = 1_000_000, seed: int = 3) -> str:
    """Generated vs measured posting lengths, as a text table (bench output and README)."""
    stats = corpus.stats
    real_counts = np.concatenate(
        [stats["head_counts"].astype(np.int64), np.ones(int(stats["hapax"]), dtype=np.int64)]
    )
    docs = corpus.real_docs
    rows = [
        (f"measured, {docs} fps", _describe(real_counts, docs, target)),
        (
            f"generated, {docs} fps",
            _describe(posting_lengths(corpus.query_terms(docs, seed)), docs, target),
        ),
        (f"generated, {n} fps", _describe(posting_lengths(corpus.query_terms(n, seed)), n, target)),
    ]
    head = " ".join(f"{'p' + format(q * 100, 'g'):>7}" for q in QUANTILES)
    generated = _max_shared(_rows(corpus.query_terms(docs, seed)))
    kept = (0.01, 0.1, 0.5, 0.9)
    same = np.quantile(stats["same_song_kept"], kept)
    lines = [
        f"posting lengths (tail exponent {corpus.tail_exponent:.2f}, tail mass "
        f"{corpus.tail_mass:.3f}, template keep {corpus.template_keep:.1f}); "
        "'met' = as a query term meets them",
        f"{'':24} {'terms':>8}  per term: {head}",
        *(
            f"{name:24} {d['terms']:8.0f}  {'':10}" + " ".join(f"{v:7.0f}" for v in d["per_term"])  # type: ignore[union-attr]
            for name, d in rows
        ),
        f"{'':24} {'':8}  met:      {head}   mean met at {target:,}",
        *(
            f"{name:24} {'':8}  {'':10}"
            + " ".join(f"{v:7.0f}" for v in d["met"])  # type: ignore[union-attr]
            + f"   {d['met_at_target']:10.0f}"
            for name, d in rows
        ),
        f"{'':24} {'':8}  met, % of fps: {head}",
        *(
            f"{name:24} {'':8}  {'':14}" + " ".join(f"{v * 100:7.3f}" for v in d["met_share"])  # type: ignore[union-attr]
            for name, d in rows
        ),
        f"most terms a fingerprint shares with another, {docs} fps: {head}",
        *(
            f"{name:24} {'':8}  {'':14}" + " ".join(f"{v:7.0f}" for v in np.quantile(m, QUANTILES))
            for name, m in (("measured", stats["unrelated_max_shared"]), ("generated", generated))
        ),
        "share of query terms a degraded copy of a song keeps (measured): "
        + " ".join(f"p{q * 100:g} {v:.2f}" for q, v in zip(kept, same, strict=True)),
    ]
    return "\n".join(lines)


def _rows(terms: Terms) -> list[np.ndarray]:
    return [terms.row(i) for i in range(len(terms))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["build", "compare"])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="clip cache folder")
    parser.add_argument("--clips", type=int, default=DEFAULT_CLIPS)
    parser.add_argument("--stats", type=Path, default=STATS_FILE, help="statistics file")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    try:
        if args.command == "build":
            clips = args.cache / CLIPS_FILE
            if not clips.exists():
                build_clips(clips, args.clips, args.processes)
            measure(clips, args.stats)
            exponent, keep = fit(args.stats)
            print(f"tail exponent {exponent:.2f}, template keep {keep:.1f}; wrote {args.stats}")
        print(compare(Corpus.load(args.stats)))
    except UserError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
