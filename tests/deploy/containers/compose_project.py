"""The compose self-host as docker/README.md sets it up, in a folder of its own, and the
unmodified pyacoustid client talking to it through the published api port."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import acoustid

from acoustid_stack.fingerprint.audio import fpcalc, write_chords

from .engine import REPO, Engine

PROJECT = "acoustid"  # `name:` of docker-compose.yml
RUNNING_PROFILES = ("--profile", "frontend", "--profile", "backend")
ALL_PROFILES = (*RUNNING_PROFILES, "--profile", "tools")
API = "http://127.0.0.1:5000"
WEB = "http://127.0.0.1:5001"


@dataclass(frozen=True)
class Song:
    fingerprint: str
    duration: int
    mbid: str


@dataclass
class ComposeProject:
    engine: Engine
    directory: Path

    def compose(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        return self.engine.run("compose", *args, cwd=self.directory, env=env, timeout=timeout)

    def up(self) -> None:
        self.compose(*RUNNING_PROFILES, "up", "--wait", timeout=600)

    def psql(self, database: str, sql: str) -> str:
        return self.compose(
            "exec", "-T", "postgres", "psql", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
            "--username", "acoustid", "--dbname", database, "--command", sql,
        ).stdout.strip()  # fmt: skip

    def states(self) -> dict[str, list[dict[str, Any]]]:
        """service -> its containers as `docker compose ps --all` reports them."""
        out = self.compose(*ALL_PROFILES, "ps", "--all", "--format", "json").stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        if len(rows) == 1 and isinstance(rows[0], list):  # older compose: one JSON array
            rows = rows[0]
        services: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            services.setdefault(row["Service"], []).append(row)
        return services

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, volumes and networks that carry this project's label."""
        label = f"label=com.docker.compose.project={PROJECT}"
        found = {
            kind: self.engine.run(*command, "--filter", label).stdout.split()
            for kind, command in {
                "containers": ("ps", "-aq"),
                "volumes": ("volume", "ls", "-q"),
                "networks": ("network", "ls", "-q"),
            }.items()
        }
        return {kind: ids for kind, ids in found.items() if ids}


def set_up_project(engine: Engine, directory: Path) -> ComposeProject:
    """The compose file and docker/ in `directory`, secrets made by docker/README.md's loop."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "docker-compose.yml", directory)
    shutil.copytree(REPO / "docker", directory / "docker", ignore=shutil.ignore_patterns("secrets"))
    (directory / "docker" / "secrets").mkdir()
    subprocess.run(["bash", "-euc", readme_secrets_loop()], cwd=directory, check=True)
    return ComposeProject(engine, directory)


def readme_secrets_loop() -> str:
    """The `for s in …; do … openssl rand …; done` loop of docker/README.md, verbatim."""
    readme = (REPO / "docker" / "README.md").read_text()
    found = re.search(r"^for s in .*?^done$", readme, re.MULTILINE | re.DOTALL)
    assert found, "docker/README.md lost its secrets loop"
    return found.group(0)


def make_songs(work: Path, count: int, first_seed: int) -> dict[Path, str]:
    """Generated WAV files, each with a fresh MBID to submit it under."""
    return {
        write_chords(work / f"song{seed}.wav", seed=seed, seconds=30): str(uuid.uuid4())
        for seed in range(first_seed, first_seed + count)
    }


def fingerprinted(files: dict[Path, str]) -> list[Song]:
    songs = []
    for path, mbid in files.items():
        data = fpcalc(path)
        songs.append(Song(data["fingerprint"], int(data["duration"]), mbid))
    return songs


def create_api_keys(project: ComposeProject) -> tuple[str, str]:
    """(application key, user key) inserted into the app database, as an operator would."""
    client_key, user_key = uuid.uuid4().hex[:10], uuid.uuid4().hex[:10]
    project.psql(
        "acoustid_app",
        f"WITH account AS (INSERT INTO account (name, apikey) VALUES ('tester', '{user_key}') "
        "RETURNING id) INSERT INTO application (name, version, apikey, account_id) "
        f"SELECT 'container tests', '1.0', '{client_key}', id FROM account",
    )
    return client_key, user_key


def use_api(url: str = API) -> None:
    acoustid.API_BASE_URL = f"{url}/v2/"


def found_mbids(client_key: str, song: Song) -> set[str]:
    response = acoustid.lookup(client_key, song.fingerprint, song.duration)
    return {match[1] for match in acoustid.parse_lookup_result(response)}


def wait_until_found(client_key: str, songs: list[Song], timeout: float) -> list[Song]:
    """Songs whose MBID lookups still miss after `timeout` seconds (empty: all found)."""
    deadline = time.monotonic() + timeout
    missing = list(songs)
    while missing and time.monotonic() < deadline:
        missing = [song for song in missing if song.mbid not in _lookup_or_none(client_key, song)]
        if missing:
            time.sleep(1)
    return missing


def _lookup_or_none(client_key: str, song: Song) -> set[str]:
    try:
        return found_mbids(client_key, song)
    except acoustid.WebServiceError:  # the api or the index is restarting
        return set()


def http_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(response.status)
