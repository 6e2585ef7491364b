"""Matching quality on degraded copies of generated songs, through the real service (issue 18).

What a user's files go through before they are looked up: cuts, noise, gain, resampling,
lossy re-encoding, a tempo change. This bench:

1. **Builds** (cached in ~/.cache/acoustid-stack/bench-matching) N songs of generated music
   (melodies, chords, drums, mixes from bench/corpus.py's generators, 45-125 s, with a random
   sox effect chain for timbre), a 44.1 kHz master each, fingerprinted with the real `fpcalc`;
   each master is degraded in 4 of the ways of DEGRADATIONS (in rotation, so 500 songs give
   each degradation about 118 copies; `--degradations-per-song 17` does all) with sox (MP3
   through libsox-fmt-mp3, Ogg Vorbis through libsox-fmt-base) and fingerprinted again, as a
   user's copy would be.
   N more songs are built and never submitted: the unrelated set.
2. **Runs** the service as deployed: `acoustid-stack run index`, `run api` and `run worker` on
   this machine's PostgreSQL, Redis and NATS (throwaway databases, keys and stream). The
   originals are submitted through `/v2/submit` with an MBID each and imported by the worker;
   submission_status names each song's track. Then every degraded copy and every unrelated
   song is looked up through `/v2/lookup`.

Figures: recall@1 per degradation (the song's own track is the first result), as a ratio to
the same run's baseline (the unmodified originals looked up again), the score distributions
of true matches and of false ones (any other track returned), and the false-positive rate
on the unrelated songs: every result the API returns is above its score threshold, so any
result for an unrelated song is a false positive.

    apt-get install -y libchromaprint-tools sox libsox-fmt-mp3
    python bench/matching.py                     # 500 songs + 500 unrelated
    python bench/matching.py --songs 100         # a quicker look
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import wave
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from acoustid_stack.config import load_settings
from acoustid_stack.db import migrate
from acoustid_stack.errors import UserError
from acoustid_stack.fingerprint.audio import fpcalc
from acoustid_stack.local.process import free_port
from acoustid_stack.local.services import Services
from api_bench import INDEX_NAME, clean_up, create_keys, environ_for, pending, process
from corpus import _drums, _effects, _music, _write_wav

DEFAULT_CACHE = Path.home() / ".cache" / "acoustid-stack" / "bench-matching"
MASTER_RATE = 44100
SUBMIT_BATCH = 50
#: the API's threshold (lookup.MIN_SCORE): results below it are never returned
API_MIN_SCORE = 0.4


def _noise_db(kind: str, db: float) -> Callable[[np.random.Generator, np.ndarray], np.ndarray]:
    """Adds white or pink noise `db` below the signal's RMS."""

    def add(rng: np.random.Generator, signal: np.ndarray) -> np.ndarray:
        noise = rng.standard_normal(signal.size)
        if kind == "pink":  # -3 dB/octave: white noise through a 1/sqrt(f) spectrum
            size = 1 << (signal.size - 1).bit_length()  # a length the FFT is fast on
            spectrum = np.fft.rfft(rng.standard_normal(size))
            spectrum[1:] /= np.sqrt(np.arange(1, spectrum.size))
            noise = np.fft.irfft(spectrum, n=size)[: signal.size]
        noise *= np.sqrt(np.mean(signal**2)) / np.sqrt(np.mean(noise**2)) * 10 ** (db / 20)
        return signal + noise

    return add


@dataclass(frozen=True)
class Degradation:
    name: str
    #: sox arguments after the input file: output options, the output name as {out}, effects
    sox: tuple[str, ...] = ("{out}",)
    suffix: str = "wav"
    #: noise added to the master's samples before sox
    mix: Callable[[np.random.Generator, np.ndarray], np.ndarray] | None = None
    #: drawn per song: (start cut s, end cut s)
    cut: tuple[str, ...] = ()


DEGRADATIONS = (
    Degradation("cut start 1-10 s", cut=("start",)),
    Degradation("cut end 1-10 s", cut=("end",)),
    Degradation("cut both 1-10 s", cut=("start", "end")),
    Degradation("white noise -30 dB", mix=_noise_db("white", -30)),
    Degradation("white noise -20 dB", mix=_noise_db("white", -20)),
    Degradation("white noise -10 dB", mix=_noise_db("white", -10)),
    Degradation("pink noise -20 dB", mix=_noise_db("pink", -20)),
    Degradation("volume +6 dB", sox=("{out}", "gain", "-l", "6")),
    Degradation("volume -6 dB", sox=("{out}", "gain", "-6")),
    Degradation("resampled 48 kHz", sox=("{out}", "rate", "-v", "48000")),
    Degradation("resampled 22.05 kHz", sox=("{out}", "rate", "22050")),
    Degradation("MP3 64 kbit/s", sox=("-C", "64", "{out}"), suffix="mp3"),
    Degradation("MP3 128 kbit/s", sox=("-C", "128", "{out}"), suffix="mp3"),
    Degradation("MP3 192 kbit/s", sox=("-C", "192", "{out}"), suffix="mp3"),
    Degradation("Ogg Vorbis q0 (~64 kbit/s)", sox=("-C", "0", "{out}"), suffix="ogg"),
    Degradation("Ogg Vorbis q5 (~160 kbit/s)", sox=("-C", "5", "{out}"), suffix="ogg"),
    Degradation("tempo +5 %", sox=("{out}", "tempo", "1.05")),
)


def _require_tools() -> None:
    missing = [tool for tool in ("fpcalc", "sox") if shutil.which(tool) is None]
    formats = subprocess.run(["sox", "-h"], check=False, capture_output=True, text=True).stdout
    if "mp3" not in formats.split("AUDIO FILE FORMATS:")[-1].split():
        missing.append("sox's MP3 format")
    if missing:
        raise UserError(
            f"the matching bench needs {', '.join(missing)}: "
            "apt-get install -y libchromaprint-tools sox libsox-fmt-mp3"
        )


def _song_signal(rng: np.random.Generator, seconds: float) -> np.ndarray:
    kind = rng.integers(0, 4)
    if kind == 0:
        return _music(rng, seconds, chords=False)
    if kind == 1:
        return _music(rng, seconds, chords=True)
    if kind == 2:
        return _drums(rng, seconds) + 0.5 * _music(rng, seconds, chords=True)
    return _music(rng, seconds, chords=False) + _music(rng, seconds, chords=True) * 0.5


def _sox(*args: str) -> None:
    subprocess.run(["sox", "-D", *args], check=True, capture_output=True)


def _fingerprint(path: Path) -> tuple[str, int]:
    data = fpcalc(path)
    return str(data["fingerprint"]), int(data["duration"])


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as f:
        return np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").astype(np.float64)


def _write_master(path: Path, samples: np.ndarray) -> None:
    """16-bit mono at the master's rate, scaled down only where the samples would clip."""
    peak = max(1.0, float(np.max(np.abs(samples))) / 32000)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(MASTER_RATE)
        out.writeframes((samples / peak).astype("<i2").tobytes())


def build_song(job: tuple[int, tuple[int, ...]]) -> dict[str, Any]:
    """One song: its original fingerprint and its copies degraded in the ways `degrade` lists
    (indices into DEGRADATIONS)."""
    seed, degrade = job
    rng = np.random.default_rng([seed, 18])
    # fpcalc reads the first 120 s: longer songs would only make the encoders slower
    seconds = float(rng.uniform(45, 125))
    song: dict[str, Any] = {"seed": seed, "copies": {}}
    with tempfile.TemporaryDirectory(prefix="matching-song-") as name:
        tmp = Path(name)
        _write_wav(tmp / "dry.wav", _song_signal(rng, seconds))
        master = tmp / "master.wav"
        _sox(str(tmp / "dry.wav"), "-r", str(MASTER_RATE), "-b", "16", str(master),
             *_effects(rng), "gain", "-n", "-3")  # fmt: skip
        song["fingerprint"], song["duration"] = _fingerprint(master)
        if not degrade:
            return song
        for degradation in (DEGRADATIONS[i] for i in degrade):
            source = master
            if degradation.mix is not None:
                source = tmp / "mixed.wav"
                _write_master(source, degradation.mix(rng, _read_wav(master)))
            out = tmp / f"copy.{degradation.suffix}"
            args = [str(out) if a == "{out}" else a for a in degradation.sox]
            trim: list[str] = []
            if "start" in degradation.cut:
                trim += ["trim", f"{rng.uniform(1, 10):.3f}"]
            if "end" in degradation.cut:
                trim += ["reverse", "trim", f"{rng.uniform(1, 10):.3f}", "reverse"]
            _sox(str(source), *args, *trim)
            song["copies"][degradation.name] = _fingerprint(out)
            out.unlink()
    return song


def build(cache: Path, songs: int, per_song: int, seed: int) -> dict[str, Any]:
    """The songs and unrelated songs, from the cache when built before with these numbers."""
    path = cache / f"songs-{songs}x{per_song}-{seed}-v2.json"
    if path.exists():
        built: dict[str, Any] = json.loads(path.read_text())
        return built
    _require_tools()
    # each song gets `per_song` of the degradations in rotation, so every degradation is
    # applied to songs * per_song / len(DEGRADATIONS) songs (the encoders cost the most time)
    ways = len(DEGRADATIONS)
    jobs = [
        (seed * 100_000 + n, tuple((n * per_song + k) % ways for k in range(per_song)))
        for n in range(songs)
    ]
    jobs += [(seed * 100_000 + 50_000 + n, ()) for n in range(songs)]
    started = time.monotonic()
    done: list[dict[str, Any]] = []
    with multiprocessing.get_context("fork").Pool(2) as pool:
        for song in pool.imap(build_song, jobs, chunksize=2):
            done.append(song)
            if len(done) % 50 == 0 or len(done) == len(jobs):
                print(f"  built {len(done)}/{len(jobs)} songs, "
                      f"{time.monotonic() - started:.0f} s", flush=True)  # fmt: skip
    built = {"songs": done[:songs], "unrelated": done[songs:]}
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(built))
    return built


# ---- the service ------------------------------------------------------------------------


def _call(http: httpx.Client, endpoint: str, form: dict[str, Any]) -> dict[str, Any]:
    reply = http.post(f"/v2/{endpoint}", data={**form, "format": "json"})
    body: dict[str, Any] = reply.json()
    if body.get("status") != "ok":
        raise SystemExit(f"{endpoint} answered {reply.status_code}: {body.get('error')}")
    return body


def submit_originals(
    http: httpx.Client, client_key: str, user_key: str, songs: list[dict[str, Any]]
) -> list[int]:
    """Submits every song with a new MBID; the submission ids in song order."""
    ids: list[int] = []
    for first in range(0, len(songs), SUBMIT_BATCH):
        form: dict[str, Any] = {"client": client_key, "user": user_key}
        for n, song in enumerate(songs[first : first + SUBMIT_BATCH]):
            song["mbid"] = str(uuid.uuid4())
            form |= {
                f"fingerprint.{n}": song["fingerprint"],
                f"duration.{n}": song["duration"],
                f"mbid.{n}": song["mbid"],
            }
        ids += [s["id"] for s in _call(http, "submit", form)["submissions"]]
    return ids


def track_of_each(http: httpx.Client, client_key: str, ids: list[int]) -> list[str | None]:
    tracks: list[str | None] = []
    for first in range(0, len(ids), SUBMIT_BATCH):
        part = ids[first : first + SUBMIT_BATCH]
        body = _call(http, "submission_status", {"client": client_key, "id": part})
        by_id = {s["id"]: s for s in body["submissions"]}
        tracks += [(by_id[i].get("result") or {}).get("id") for i in part]
    return tracks


def lookup(
    http: httpx.Client, client_key: str, copy: tuple[str, int], max_duration_diff: int | None
) -> list[dict[str, Any]]:
    fingerprint, duration = copy
    form: dict[str, Any] = {"client": client_key, "fingerprint": fingerprint, "duration": duration}
    if max_duration_diff is not None:
        form["maxdurationdiff"] = max_duration_diff
    results: list[dict[str, Any]] = _call(http, "lookup", form)["results"]
    return results


@dataclass
class Outcome:
    looked_up: int = 0
    first: int = 0
    true_scores: list[float] | None = None
    false_scores: list[float] | None = None


def measure(
    http: httpx.Client, client_key: str, built: dict[str, Any], tracks: list[str | None]
) -> tuple[dict[str, Outcome], Outcome]:
    jobs: list[tuple[str, str | None, tuple[str, int], int | None]] = []
    for song, track in zip(built["songs"], tracks, strict=True):
        original = (song["fingerprint"], song["duration"])
        jobs.append(("baseline: the originals", track, original, None))
        for name, copy in song["copies"].items():
            jobs.append((name, track, tuple(copy), None))
            if name.startswith("cut"):  # a cut copy is shorter than the API's default 7 s allow
                jobs.append((f"{name}, maxdurationdiff=20", track, tuple(copy), 20))
    unrelated = [(s["fingerprint"], s["duration"]) for s in built["unrelated"]]
    jobs += [("unrelated songs", None, copy, None) for copy in unrelated]

    def one(
        job: tuple[str, str | None, tuple[str, int], int | None],
    ) -> tuple[str, str | None, Any]:
        return job[0], job[1], lookup(http, client_key, job[2], job[3])

    outcomes: dict[str, Outcome] = {}
    with ThreadPoolExecutor(8) as pool:
        for name, track, results in pool.map(one, jobs):
            outcome = outcomes.setdefault(name, Outcome(true_scores=[], false_scores=[]))
            assert outcome.true_scores is not None
            assert outcome.false_scores is not None
            outcome.looked_up += 1
            outcome.first += bool(results) and results[0]["id"] == track
            for result in results:
                scores = outcome.true_scores if result["id"] == track else outcome.false_scores
                scores.append(float(result["score"]))
    unrelated = outcomes.pop("unrelated songs")
    return outcomes, unrelated


def _quantiles(values: list[float] | None) -> str:
    if not values:
        return "-"
    q = np.percentile(values, [1, 50])
    return f"{q[0]:.2f} / {q[1]:.2f}"


ROW = "{:<38}{:>9}{:>7}{:>14}{:>10}{:>8}"


def report(outcomes: dict[str, Outcome], unrelated: Outcome, songs: int, tracks: int) -> None:
    base = outcomes["baseline: the originals"]
    base_recall = base.first / base.looked_up
    print(f"\n{songs} songs submitted, imported as {tracks} distinct tracks")
    print("recall@1 ratio: to the same run's baseline (the originals looked up again)")
    print(ROW.format("degradation", "recall@1", "ratio", "true p1/p50", "false max", "false n"))
    for name, o in outcomes.items():
        recall = o.first / o.looked_up
        false_max = f"{max(o.false_scores):.2f}" if o.false_scores else "-"
        false_n = len(o.false_scores or [])
        row = (f"{recall:.3f}", f"{recall / base_recall:.3f}", _quantiles(o.true_scores))
        print(ROW.format(name, *row, false_max, false_n))
    scores = unrelated.false_scores or []
    print(
        f"\nunrelated songs never submitted: {unrelated.looked_up} looked up, {len(scores)} "
        f"results (all above the API threshold {API_MIN_SCORE}): false-positive rate "
        f"{len(scores) / unrelated.looked_up:.4f}, highest score {max(scores, default=0.0):.2f}"
    )


def run_service(args: argparse.Namespace, built: dict[str, Any]) -> None:
    prefix = f"acoustid_matching_{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory(prefix="matching-bench-") as tmp:
        work = Path(tmp)
        (work / "services").mkdir()
        with Services(work_dir=work / "services") as services:
            environ = environ_for(services, prefix)
            try:
                run_stack(work, environ, built)
            finally:
                clean_up(services, prefix)


def run_stack(work: Path, environ: dict[str, str], built: dict[str, Any]) -> None:
    settings = load_settings(path=None, environ=environ)
    for _ in migrate.upgrade(settings.database):
        pass
    index_url = f"http://127.0.0.1:{free_port()}"
    index_argv = ["run", "index", "--dir", str(work / "index"), "--port",
                  index_url.rsplit(":", 1)[1], "--create", INDEX_NAME]  # fmt: skip
    with process("index", index_argv, work, environ, f"{index_url}/_health"):
        environ["ACOUSTID_INDEX_SHARDS"] = index_url
        settings = load_settings(path=None, environ=environ)
        client_key, user_key, _, _ = create_keys(settings)
        port = free_port()
        api_argv = ["run", "api", "--port", str(port), "--workers", "2"]
        environ["ACOUSTID_WEBSITE_SHUTDOWN_FILE"] = str(work / "api-shutdown")
        api_ready = f"http://127.0.0.1:{port}/_health_docker"
        with (
            process("api", api_argv, work, environ, api_ready),
            process("worker", ["run", "worker"], work, environ, None),
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http,
        ):
            songs = built["songs"]
            ids = submit_originals(http, client_key, user_key, songs)
            started = time.monotonic()
            while pending(settings):
                if time.monotonic() - started > 600:
                    raise SystemExit("submissions not imported after 600 s: see worker.log")
                time.sleep(0.5)
            tracks = track_of_each(http, client_key, ids)
            print(f"imported {len(ids)} songs in {time.monotonic() - started:.0f} s", flush=True)
            outcomes, unrelated = measure(http, client_key, built, tracks)
    report(outcomes, unrelated, len(songs), len({t for t in tracks if t}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--songs", type=int, default=500, help="songs submitted (and unrelated)")
    parser.add_argument(
        "--degradations-per-song",
        type=int,
        default=4,
        help=f"copies made of each song, in rotation over the {len(DEGRADATIONS)} degradations",
    )
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args()
    try:
        built = build(args.cache, args.songs, args.degradations_per_song, args.seed)
    except UserError as exc:
        sys.exit(str(exc))
    run_service(args, built)


if __name__ == "__main__":
    main()
