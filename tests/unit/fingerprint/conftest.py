from __future__ import annotations

from pathlib import Path

import pytest

from acoustid_stack.fingerprint.audio import SAMPLE_RATE, write_chords

SONG_SECONDS = 30


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="session")
def song(audio_dir: Path) -> Path:
    return write_chords(audio_dir / "song.wav", seed=1, seconds=SONG_SECONDS)


@pytest.fixture(scope="session")
def song_cut(audio_dir: Path) -> Path:
    """The song with 1.5 s cut from the front (not a whole number of hash steps)."""
    cut = int(1.5 * SAMPLE_RATE)
    return write_chords(audio_dir / "song_cut.wav", seed=1, seconds=SONG_SECONDS, skip_samples=cut)


@pytest.fixture(scope="session")
def other_song(audio_dir: Path) -> Path:
    return write_chords(audio_dir / "other.wav", seed=2, seconds=SONG_SECONDS)
