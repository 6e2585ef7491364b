"""`up --demo`: prove the whole path works — fingerprint, submit, import, look up.

Songs are generated audio fingerprinted by `fpcalc` when chromaprint is installed; on a
machine without it (no system packages) the demo uses synthetic fingerprints instead and
says so. Everything goes through the public API, as a client would.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from acoustid_stack.errors import UserError
from acoustid_stack.fingerprint import encode_fingerprint
from acoustid_stack.fingerprint.audio import fpcalc, fpcalc_available, write_chords

SONGS = 3
SECONDS = 30
# fpcalc gives about 8 hashes per second of audio
HASHES_PER_SECOND = 8
IMPORT_TIMEOUT = 60.0
#: the demo songs' MBIDs are derived from their names, so a second demo finds what the first
#: submitted instead of adding the same songs again under new MBIDs
DEMO_NAMESPACE = uuid.UUID("6f1c1b4e-7d2a-4c55-9a53-0d5e0e7a3c11")


@dataclass(frozen=True)
class Song:
    name: str
    fingerprint: str
    duration: int
    mbid: str


def demo_songs(work_dir: Path) -> tuple[list[Song], str]:
    """The songs to submit, and how their fingerprints were made."""
    songs = []
    use_fpcalc = fpcalc_available()
    for seed in range(1, SONGS + 1):
        if use_fpcalc:
            data = fpcalc(write_chords(work_dir / f"song{seed}.wav", seed=seed, seconds=SECONDS))
            fingerprint, duration = str(data["fingerprint"]), int(data["duration"])
        else:
            rng = np.random.default_rng(seed)
            hashes = rng.integers(0, 2**32, size=SECONDS * HASHES_PER_SECOND, dtype=np.uint32)
            fingerprint, duration = encode_fingerprint(hashes), SECONDS
        name = f"song {seed}"
        songs.append(Song(name, fingerprint, duration, str(uuid.uuid5(DEMO_NAMESPACE, name))))
    source = "fpcalc on generated audio" if use_fpcalc else "synthetic (fpcalc not installed)"
    return songs, source


def _call(client: httpx.Client, endpoint: str, data: dict[str, Any]) -> dict[str, Any]:
    response = client.post(endpoint, data={**data, "format": "json"})
    body: dict[str, Any] = response.json()
    if body.get("status") != "ok":
        raise UserError(f"demo: {endpoint} answered {response.status_code}: {body.get('error')}")
    return body


def run_demo(*, api_url: str, client_key: str, user_key: str, console: Console) -> None:
    """Submit, wait for the import, look up; raises UserError when a song is not found."""
    with (
        tempfile.TemporaryDirectory(prefix="acoustid-demo-") as work,
        httpx.Client(base_url=f"{api_url}/v2/", timeout=10.0) as client,
    ):
        songs, source = demo_songs(Path(work))
        missing = [song for song in songs if not _found(client, client_key, song)[0]]
        if missing:
            console.print(f"demo: submitting {len(missing)} songs, fingerprints from {source}")
            _submit_and_wait(client, client_key, user_key, missing)
        else:
            console.print(
                "demo: the songs of an earlier demo are here already; not submitted again"
            )
        table = Table(title="demo: lookups")
        for column in ("song", "submitted MBID", "found", "score"):
            table.add_column(column)
        not_found = []
        for song in songs:
            ok, best = _found(client, client_key, song)
            if not ok:
                not_found.append(song.name)
            table.add_row(
                song.name,
                song.mbid,
                "[green]yes[/]" if ok else "[red]no[/]",
                f"{best['score']:.2f}" if best else "-",
            )
        console.print(table)
        if not_found:
            raise UserError(f"demo: lookup did not find {', '.join(not_found)}")
        console.print("[bold green]demo ok[/]: submitted, imported and found again")


def _found(client: httpx.Client, client_key: str, song: Song) -> tuple[bool, dict[str, Any] | None]:
    """Whether a lookup of the song finds its MBID, and the best result."""
    found = _call(
        client,
        "lookup",
        {
            "client": client_key,
            "meta": "recordingids",
            "fingerprint": song.fingerprint,
            "duration": song.duration,
        },
    )
    best: dict[str, Any] | None = found["results"][0] if found["results"] else None
    recordings = [r["id"] for r in (best or {}).get("recordings", [])]
    return song.mbid in recordings, best


def _submit_and_wait(
    client: httpx.Client, client_key: str, user_key: str, songs: list[Song]
) -> None:
    submit: dict[str, Any] = {"client": client_key, "user": user_key}
    for i, song in enumerate(songs):
        submit |= {
            f"fingerprint.{i}": song.fingerprint,
            f"duration.{i}": song.duration,
            f"mbid.{i}": song.mbid,
        }
    ids = [s["id"] for s in _call(client, "submit", submit)["submissions"]]
    deadline = time.monotonic() + IMPORT_TIMEOUT
    while True:
        statuses = _call(client, "submission_status", {"client": client_key, "id": ids})
        if all(s["status"] == "imported" for s in statuses["submissions"]):
            return
        if time.monotonic() > deadline:
            raise UserError(
                f"demo: submissions not imported after {IMPORT_TIMEOUT:.0f} s; "
                "see the worker logs in the data folder's logs/"
            )
        time.sleep(0.2)
