"""Generated audio and the real `fpcalc`: for `up --demo`, the tests and the benchmarks.

The audio is random three-note chords with a little noise: the same seed gives the same
song, different seeds give unrelated songs, which is what a fingerprint demo needs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import wave
from pathlib import Path
from typing import Any

import numpy as np

from acoustid_stack.errors import UserError

#: chromaprint resamples to 11025 Hz anyway; writing at that rate keeps files small.
SAMPLE_RATE = 11025
CHORD_SECONDS = 0.4


def write_chords(path: Path, *, seed: int, seconds: float, skip_samples: int = 0) -> Path:
    """A 16-bit mono WAV of random three-note chords with a little noise (same seed, same
    audio); `skip_samples` cuts that many samples from the front, as a time-shifted copy."""
    rng = np.random.default_rng(seed)
    total = int(seconds * SAMPLE_RATE)
    per_chord = int(CHORD_SECONDS * SAMPLE_RATE)
    t = np.arange(per_chord) / SAMPLE_RATE
    pieces = []
    for _ in range(-(-total // per_chord)):
        notes = 220.0 * 2.0 ** (rng.integers(0, 36, size=3) / 12.0)
        pieces.append(sum(np.sin(2 * np.pi * f * t) for f in notes) / 3)
    signal = np.concatenate(pieces)[:total] + 0.05 * rng.standard_normal(total)
    samples = (np.clip(signal, -1, 1) * 20000).astype("<i2")[skip_samples:]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.tobytes())
    return path


def fpcalc_available() -> bool:
    return shutil.which("fpcalc") is not None


def fpcalc(path: Path, *, raw: bool = False) -> dict[str, Any]:
    """`fpcalc -json` output for a file (`fingerprint`, `duration`); `raw` gives the hash list
    instead of the compressed string.

    Debian's fpcalc (chromaprint 1.5) exits 3 after a harmless end-of-file decode error on
    WAV input, hence `-ignore-errors` and accepting that status.
    """
    if not fpcalc_available():
        raise UserError(
            "fpcalc not found; install chromaprint (apt-get install libchromaprint-tools)"
        )
    command = ["fpcalc", "-json", "-ignore-errors", *(["-raw"] if raw else []), str(path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode not in (0, 3) or not done.stdout.strip():
        raise UserError(f"fpcalc failed on {path}: {done.stderr.strip() or done.returncode}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result
