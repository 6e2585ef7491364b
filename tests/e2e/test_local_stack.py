"""`acoustid-stack up` as a user runs it: the whole stack from pip-shipped servers, the
unmodified pyacoustid client through it, a clean stop, and a second start that kept the data."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import acoustid
import psycopg
import pytest
from rich.console import Console

from acoustid_stack.config import load_settings
from acoustid_stack.fingerprint.audio import fpcalc, write_chords
from acoustid_stack.local.bootstrap import ensure_local_application
from acoustid_stack.local.demo import run_demo
from acoustid_stack.local.process import free_port, port_open
from acoustid_stack.local.stack import DEFAULT_PORTS
from acoustid_stack.local.supervisor import LOCK_FILE, STATE_FILE, read_state

pytestmark = [pytest.mark.integration, pytest.mark.slow]

START_TIMEOUT = 120.0


class Up:
    """One `acoustid-stack up` child process on a data folder."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.log = data_dir.parent / f"up-{time.monotonic_ns()}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ACOUSTID_")}
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "acoustid_stack", "up", "--data-dir", str(data_dir)],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def wait_ready(self) -> dict[str, object]:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            state = read_state(self.data_dir)
            if state and all(s["state"] == "running" for s in state["services"]):  # type: ignore[union-attr]
                return state
            time.sleep(0.2)
        raise AssertionError(f"stack not ready in {START_TIMEOUT} s:\n{self.log.read_text()}")


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data folder whose ports are free ones, so the test cannot collide with anything.

    Not under pytest's basetemp (0700), which the user PostgreSQL runs as cannot enter."""
    folder = Path(tempfile.mkdtemp(prefix="acoustid-up-"))
    (folder / "ports.json").write_text(json.dumps({name: free_port() for name in DEFAULT_PORTS}))
    yield folder
    # whatever happened, leave no stack running behind
    state = read_state(folder)
    if state is not None:
        os.kill(int(state["supervisor_pid"]), signal.SIGTERM)
        time.sleep(5)
    shutil.rmtree(folder, ignore_errors=True)


def fingerprint(path: Path) -> tuple[str, int]:
    data = fpcalc(path)
    return str(data["fingerprint"]), int(data["duration"])


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "acoustid_stack", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("ACOUSTID_")},
    )


def lookup_mbids(client_key: str, song: tuple[str, int]) -> list[str]:
    found = acoustid.lookup(client_key, song[0], song[1], meta="recordingids")
    assert found["status"] == "ok", found
    return [r["id"] for result in found["results"] for r in result.get("recordings", [])]


def test_up_serves_pyacoustid_stops_cleanly_and_resumes_with_the_data(
    data_dir: Path, tmp_path: Path
) -> None:
    first = Up(data_dir)
    state = first.wait_ready()
    names = {s["name"] for s in state["services"]}  # type: ignore[union-attr]
    assert {"postgresql", "redis", "nats", "index", "api", "worker-1", "cron", "web"} <= names
    ports = json.loads((data_dir / "ports.json").read_text())
    acoustid.API_BASE_URL = f"http://127.0.0.1:{ports['api']}/v2/"
    settings = load_settings(str(data_dir / "acoustid.conf"), environ={})
    client_key, user_key = ensure_local_application(settings)

    songs = {
        name: fingerprint(write_chords(tmp_path / f"{name}.wav", seed=seed, seconds=40))
        for seed, name in ((11, "a"), (12, "b"), (99, "unrelated"))
    }
    mbids = {name: str(uuid.uuid4()) for name in ("a", "b")}
    response = acoustid.submit(
        client_key,
        user_key,
        [
            {"fingerprint": songs[n][0], "duration": songs[n][1], "mbid": mbids[n]}
            for n in ("a", "b")
        ],
    )
    assert response["status"] == "ok"
    deadline = time.monotonic() + 60
    while mbids["a"] not in lookup_mbids(client_key, songs["a"]) or mbids["b"] not in lookup_mbids(
        client_key, songs["b"]
    ):
        assert time.monotonic() < deadline, "the worker did not import the submissions"
        time.sleep(0.3)
    assert lookup_mbids(client_key, songs["unrelated"]) == []

    pids = [int(s["pid"]) for s in state["services"]]  # type: ignore[union-attr]
    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(timeout=60) == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not any(port_open("127.0.0.1", port) for port in ports.values())
    assert not (data_dir / STATE_FILE).exists()
    assert not (data_dir / LOCK_FILE).exists()

    second = Up(data_dir)
    second.wait_ready()
    assert ensure_local_application(settings) == (client_key, user_key)
    assert mbids["a"] in lookup_mbids(client_key, songs["a"])
    status = cli("status", "--data-dir", str(data_dir))
    assert status.returncode == 0, status.stderr
    assert f"client key: {client_key}   user key: {user_key}" in status.stdout

    # the documented daily backup and its check, on the servers `up` runs (PostgreSQL 18,
    # Valkey 9), as a user types them
    for command in ("run", "verify", "status"):
        done = cli("backup", command, "--data-dir", str(data_dir))
        assert done.returncode == 0, f"backup {command}:\n{done.stdout}{done.stderr}"
        if command == "verify":
            for kind in ("postgresql", "dump", "index", "redis"):
                assert f"{kind}: ok" in done.stdout, done.stdout
            assert "fingerprint.fingerprint: 2" in done.stdout

    # `up --demo` on a resumed stack: the second demo finds the first one's songs
    def demo() -> tuple[str, object]:
        said = io.StringIO()
        run_demo(
            api_url=f"http://127.0.0.1:{ports['api']}",
            client_key=client_key,
            user_key=user_key,
            console=Console(file=said, width=200),
        )
        with psycopg.connect(settings.database.ingest.conninfo()) as conn:
            return said.getvalue(), conn.execute("SELECT count(*) FROM submission").fetchone()

    first_said, first_count = demo()
    again_said, again_count = demo()
    assert "demo ok" in first_said
    assert "demo ok" in again_said
    assert "not submitted again" in again_said
    assert again_count == first_count

    down = subprocess.run(
        [sys.executable, "-m", "acoustid_stack", "down", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert down.returncode == 0, down.stderr
    assert "stopped in" in down.stdout
    assert second.process.wait(timeout=30) == 0
    assert read_state(data_dir) is None


def test_status_and_down_without_a_running_stack_say_so(tmp_path: Path) -> None:
    for command in ("status", "down"):
        done = subprocess.run(
            [sys.executable, "-m", "acoustid_stack", command, "--data-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1
        assert "no acoustid-stack is running" in done.stderr
        assert "Traceback" not in done.stderr


def test_up_stack_restores_postgresql_to_a_point_in_time(data_dir: Path) -> None:
    """runbooks/pitr.md's PostgreSQL steps on an `up` stack: back up, damage, stop the
    stack, restore to the moment before the damage, start it again, finish."""
    import psycopg

    stack = Up(data_dir)
    stack.wait_ready()
    settings = load_settings(str(data_dir / "acoustid.conf"), environ={})
    app = settings.database.get("app").conninfo()
    data = ["--data-dir", str(data_dir)]
    done = cli("backup", "run", *data, "--what", "postgresql")
    assert done.returncode == 0, done.stderr
    with psycopg.connect(app, autocommit=True) as conn:
        conn.execute("INSERT INTO account (name, apikey) VALUES ('before', 'k-before')")
        target = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        time.sleep(0.5)
        conn.execute("UPDATE account SET name = 'damaged'")
        # archive the WAL holding the damage now instead of after archive_timeout
        segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]  # type: ignore[index]
        deadline = time.monotonic() + 60
        while (
            conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()[0] < segment
        ):  # type: ignore[index]
            assert time.monotonic() < deadline, "the WAL was not archived"
            time.sleep(0.2)
    assert cli("down", *data).returncode == 0
    assert stack.process.wait(timeout=30) == 0

    restored = cli("restore", "postgresql", *data, "--time", target.isoformat(sep=" "))
    assert restored.returncode == 0, restored.stderr
    assert "restored into" in restored.stdout

    again = Up(data_dir)
    again.wait_ready()
    finished = cli("restore", "finish", *data)
    assert finished.returncode == 0, finished.stderr
    with psycopg.connect(app) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM account")}
        assert "before" in names
        assert "damaged" not in names
        conn.execute("INSERT INTO account (name, apikey) VALUES ('after', 'k-after')")
    assert cli("down", *data).returncode == 0
    assert again.process.wait(timeout=30) == 0
