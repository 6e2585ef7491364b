"""The real AcoustID client, unmodified, against our api: pyacoustid + Debian's fpcalc.

Audio is generated here (random melodies, one seed per "song"). fpcalc runs with
`-ignore-errors -json` because chromaprint 1.5 reports a harmless end-of-file decode error
on WAV input. The import step is done by writing the fingerprints straight into the
fingerprint database and the index, so this test covers the api alone.
"""

from __future__ import annotations

import json
import subprocess
import uuid
import wave
from pathlib import Path
from typing import Any

import acoustid
import numpy as np
import psycopg
import pytest

from acoustid_stack.config import Settings
from acoustid_stack.fingerprint import decode_fingerprint

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
]

RATE = 22050
SECONDS = 40


def melody(path: Path, seed: int) -> Path:
    """A WAV of random notes with harmonics and a little noise: distinct per seed."""
    rng = np.random.default_rng(seed)
    notes = []
    for _ in range(SECONDS * 5):
        t = np.arange(int(RATE * 0.2)) / RATE
        base = 110 * 2 ** (rng.integers(0, 48) / 12)
        tone = sum(np.sin(2 * np.pi * base * k * t) / k for k in (1, 2, 3))
        notes.append(tone * np.exp(-3 * t))
    signal = np.concatenate(notes) + rng.normal(0, 0.02, len(notes) * len(notes[0]))
    samples = (signal / np.abs(signal).max() * 0.8 * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(samples.tobytes())
    return path


def fpcalc(path: Path) -> tuple[str, int]:
    """(compressed fingerprint, duration in whole seconds) as fpcalc reports them."""
    result = subprocess.run(
        ["fpcalc", "-ignore-errors", "-json", str(path)],
        capture_output=True,
        check=False,
        timeout=60,
    )
    data = json.loads(result.stdout)
    return data["fingerprint"], int(data["duration"])


def sox(source: Path, target: Path, *effects: str) -> Path:
    subprocess.run(["sox", str(source), str(target), *effects], check=True, timeout=60)
    return target


@pytest.fixture(scope="module")
def songs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("audio")
    files = {name: melody(work / f"{name}.wav", seed) for seed, name in enumerate("abc", 1)}
    files["unrelated"] = melody(work / "unrelated.wav", 99)
    files["a_ogg"] = sox(files["a"], work / "a.ogg", "rate", "44100", "gain", "-2")
    # 5 s shorter: inside the default 7-s duration window of a lookup
    files["a_trimmed"] = sox(files["a"], work / "a_trimmed.wav", "trim", "0", "35")
    return files


@pytest.fixture(scope="module")
def client_api(stack: tuple[str, Settings, Any, Any]) -> str:
    url = stack[0]
    acoustid.API_BASE_URL = f"{url}/v2/"
    return url


def test_pyacoustid_submits_and_finds_generated_songs(
    stack: tuple[str, Settings, Any, Any], client_api: str, songs: dict[str, Path]
) -> None:
    _, settings, catalog, keys = stack
    mbids = {name: uuid.uuid4() for name in "abc"}
    prints = {name: fpcalc(songs[name]) for name in "abc"}

    response = acoustid.submit(
        keys.client_key,
        keys.user_key,
        [
            {"fingerprint": prints[name][0], "duration": prints[name][1], "mbid": str(mbids[name])}
            for name in "abc"
        ],
    )
    assert response["status"] == "ok"
    ids = [submission["id"] for submission in response["submissions"]]
    assert [submission["index"] for submission in response["submissions"]] == ["0", "1", "2"]
    with psycopg.connect(settings.database.ingest.conninfo()) as conn:
        stored = conn.execute(
            "SELECT mbid FROM submission WHERE id = ANY(%s) ORDER BY id", (ids,)
        ).fetchall()
    assert [row[0] for row in stored] == [mbids[name] for name in "abc"]

    # the import, done directly (the worker has its own tests)
    for name in "abc":
        fingerprint, duration = prints[name]
        catalog.add(
            decode_fingerprint(fingerprint).hashes,
            duration,
            mbids=(mbids[name],),
            meta={"track": f"Song {name}", "artist": "Generated"},
        )

    for name in "abc":
        fingerprint, duration = prints[name]
        matches = list(
            acoustid.parse_lookup_result(acoustid.lookup(keys.client_key, fingerprint, duration))
        )
        assert matches[0][1:] == (str(mbids[name]), f"Song {name}", "Generated")
        assert matches[0][0] > 0.9
        assert {match[1] for match in matches} == {str(mbids[name])}

    for copy in ("a_ogg", "a_trimmed"):
        fingerprint, duration = fpcalc(songs[copy])
        matches = list(
            acoustid.parse_lookup_result(acoustid.lookup(keys.client_key, fingerprint, duration))
        )
        assert matches, copy
        assert matches[0][1] == str(mbids["a"]), copy

    fingerprint, duration = fpcalc(songs["unrelated"])
    unrelated = acoustid.lookup(keys.client_key, fingerprint, duration)
    assert unrelated == {"status": "ok", "results": []}


def test_pyacoustid_sees_our_errors_as_web_service_errors(
    stack: tuple[str, Settings, Any, Any], client_api: str
) -> None:
    with pytest.raises(acoustid.WebServiceError, match="invalid API key"):
        acoustid.submit("wrongkey", "nobody", {"fingerprint": "AQAA", "duration": 10})
