"""The real AcoustID client, unmodified, against our api: pyacoustid + Debian's fpcalc.

Audio is generated (random chords, one seed per "song"). fpcalc runs with
`-ignore-errors -json` because chromaprint 1.5 reports a harmless end-of-file decode error
on WAV input. The import step is done by writing the fingerprints straight into the
fingerprint database and the index, so this test covers the api alone.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

import acoustid
import psycopg
import pytest

from acoustid_stack.config import Settings
from acoustid_stack.fingerprint import decode_fingerprint
from acoustid_stack.fingerprint.audio import fpcalc, write_chords

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
]

SECONDS = 40


def fingerprint_of(path: Path) -> tuple[str, int]:
    """(compressed fingerprint, duration in whole seconds) as fpcalc reports them."""
    data = fpcalc(path)
    return data["fingerprint"], int(data["duration"])


def sox(source: Path, target: Path, *effects: str) -> Path:
    subprocess.run(["sox", str(source), str(target), *effects], check=True, timeout=60)
    return target


@pytest.fixture(scope="module")
def songs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("audio")
    files = {
        name: write_chords(work / f"{name}.wav", seed=seed, seconds=SECONDS)
        for seed, name in enumerate("abc", 1)
    }
    files["unrelated"] = write_chords(work / "unrelated.wav", seed=99, seconds=SECONDS)
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
    prints = {name: fingerprint_of(songs[name]) for name in "abc"}

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
        fingerprint, duration = fingerprint_of(songs[copy])
        matches = list(
            acoustid.parse_lookup_result(acoustid.lookup(keys.client_key, fingerprint, duration))
        )
        assert matches, copy
        assert matches[0][1] == str(mbids["a"]), copy

    fingerprint, duration = fingerprint_of(songs["unrelated"])
    unrelated = acoustid.lookup(keys.client_key, fingerprint, duration)
    assert unrelated == {"status": "ok", "results": []}


def test_pyacoustid_sees_our_errors_as_web_service_errors(
    stack: tuple[str, Settings, Any, Any], client_api: str
) -> None:
    with pytest.raises(acoustid.WebServiceError, match="invalid API key"):
        acoustid.submit("wrongkey", "nobody", {"fingerprint": "AQAA", "duration": 10})
