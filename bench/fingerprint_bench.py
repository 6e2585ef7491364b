"""Fingerprint core throughput beside libchromaprint's C codec, measured in the same run.

    python bench/fingerprint_bench.py [--seconds 120] [--repeat 7]

Needs `fpcalc` and `libchromaprint1` (Debian). It generates 120 s of audio, fingerprints it
with fpcalc (≈ 950 hashes, what a lookup carries), then prints per-call times and ratios:
our decode/encode vs the C library called through ctypes (ctypes adds ~µs per call to the C
side, so the ratio slightly flatters us), and scoring 20 candidates in one batch vs one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# the ctypes oracle lives with the tests; the app never loads C code
sys.path.insert(0, str(ROOT / "tests" / "unit" / "fingerprint"))

import libchromaprint  # noqa: E402

from acoustid_stack.fingerprint import (  # noqa: E402
    compare2,
    decode_fingerprint,
    encode_fingerprint,
    score_candidates,
)
from acoustid_stack.fingerprint.audio import fpcalc, write_chords  # noqa: E402

CANDIDATES = 20


def best_time(function: Callable[[], object], repeat: int) -> float:
    """Seconds per call: the fastest of `repeat` runs, each long enough to be measurable."""
    timer = timeit.Timer(function)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeat, number=number)) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="audio length")
    parser.add_argument("--repeat", type=int, default=7, help="timing runs, best one counts")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as work:
        song = write_chords(Path(work) / "song.wav", seed=1, seconds=args.seconds)
        hashes = np.array(fpcalc(song, raw=True)["fingerprint"], dtype=np.uint32)
        text = fpcalc(song, raw=False)["fingerprint"]
        others = [
            np.array(
                fpcalc(
                    write_chords(Path(work) / f"{i}.wav", seed=100 + i, seconds=args.seconds),
                    raw=True,
                )["fingerprint"],
                dtype=np.uint32,
            )
            for i in range(3)
        ]
    data = text.encode()
    assert np.array_equal(decode_fingerprint(text).hashes, hashes)
    rng = np.random.default_rng(0)
    # real fingerprints, some shifted, so alignment and bit counting do real work
    candidates = [others[i % 3][int(rng.integers(0, 40)) :] for i in range(CANDIDATES - 1)]
    candidates.append(hashes[12:])

    ours_decode = best_time(lambda: decode_fingerprint(text), args.repeat)
    c_decode = best_time(lambda: libchromaprint.decode(data), args.repeat)
    ours_encode = best_time(lambda: encode_fingerprint(hashes), args.repeat)
    c_encode = best_time(lambda: libchromaprint.encode(hashes, 1), args.repeat)
    one = best_time(lambda: score_candidates(hashes, candidates[-1:], max_offset=80), args.repeat)
    batch = best_time(lambda: score_candidates(hashes, candidates, max_offset=80), args.repeat)
    looped = best_time(lambda: [compare2(c, hashes, 80) for c in candidates], args.repeat)

    def row(name: str, seconds: float, note: str = "") -> None:
        print(f"{name:<44} {seconds * 1e6:9.1f} µs  {1 / seconds:10.0f}/s  {note}")

    print(f"fingerprint: {hashes.size} hashes, {len(text)} chars ({args.seconds:.0f} s audio)")
    row("decode, ours (NumPy)", ours_decode, f"= {ours_decode / c_decode:.1f}× libchromaprint")
    row("decode, libchromaprint (ctypes)", c_decode)
    row("encode, ours (NumPy)", ours_encode, f"= {ours_encode / c_encode:.1f}× libchromaprint")
    row("encode, libchromaprint (ctypes)", c_encode)
    row("compare2, 1 candidate", one)
    row(f"compare2, {CANDIDATES} candidates in one batch", batch, f"= {batch / one:.2f}× one")
    row(f"compare2, {CANDIDATES} candidates one by one", looped, f"= {looped / batch:.1f}× batch")


if __name__ == "__main__":
    main()
