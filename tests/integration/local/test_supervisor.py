"""The supervisor keeps real child processes up, in order, and leaves nothing behind."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from acoustid_stack.errors import UserError
from acoustid_stack.local.process import ManagedProcess, free_port, port_open
from acoustid_stack.local.supervisor import (
    STATE_FILE,
    Service,
    ServiceStatus,
    State,
    Supervisor,
    read_state,
)

pytestmark = pytest.mark.integration


def http_service(tmp_path: Path, name: str, depends_on: tuple[str, ...] = ()) -> Service:
    port = free_port()
    process = ManagedProcess(
        name=name,
        argv=[sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        log_path=tmp_path / f"{name}.log",
        ready=lambda: port_open("127.0.0.1", port),
        cwd=tmp_path,
    )
    return Service(name=name, process=process, depends_on=depends_on, port=port)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_services_start_after_their_dependencies_and_stop_without_orphans(tmp_path: Path) -> None:
    started: list[str] = []

    def record(statuses: list[ServiceStatus]) -> None:
        for status in statuses:
            if status.state == "starting" and status.name not in started:
                started.append(status.name)

    services = [
        http_service(tmp_path, "api", ("db", "cache")),
        http_service(tmp_path, "cache"),
        http_service(tmp_path, "db"),
    ]
    with Supervisor(services, state_dir=tmp_path / "state", on_change=record) as supervisor:
        supervisor.start()
        assert started == ["db", "cache", "api"]
        state = read_state(tmp_path / "state")
        assert state is not None
        assert {s["name"]: s["state"] for s in state["services"]} == dict.fromkeys(
            ("db", "cache", "api"), "running"
        )
        pids = [s.pid for s in supervisor.statuses()]
    assert all(pid is not None and not pid_alive(pid) for pid in pids)
    assert not (tmp_path / "state" / STATE_FILE).exists()
    assert all(not port_open("127.0.0.1", s.port or 0) for s in services)


def test_a_killed_service_is_restarted_after_backoff(tmp_path: Path) -> None:
    service = http_service(tmp_path, "index")
    with Supervisor([service], state_dir=tmp_path, backoff_initial=0.1) as supervisor:
        supervisor.start()
        first_pid = service.process.pid
        service.process.kill()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and service.restarts == 0:
            supervisor.poll()
            time.sleep(0.05)
        assert service.restarts == 1
        assert service.state == State.RUNNING
        assert service.process.pid != first_pid
        assert port_open("127.0.0.1", service.port or 0)


def test_a_service_failing_at_start_stops_those_already_up(tmp_path: Path) -> None:
    good = http_service(tmp_path, "db")
    bad = Service(
        name="api",
        depends_on=("db",),
        process=ManagedProcess(
            name="api",
            argv=["sh", "-c", "echo port 5000 is taken >&2; exit 1"],
            log_path=tmp_path / "api.log",
            ready=lambda: False,
        ),
    )
    with (
        pytest.raises(UserError, match="port 5000 is taken"),
        Supervisor([good, bad], state_dir=tmp_path) as supervisor,
    ):
        supervisor.start()
    assert not good.process.running()
    assert not port_open("127.0.0.1", good.port or 0)


def test_a_second_supervisor_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    with (
        Supervisor([http_service(tmp_path, "a")], state_dir=tmp_path),
        pytest.raises(UserError, match="already running"),
    ):
        Supervisor([http_service(tmp_path, "b")], state_dir=tmp_path).acquire()


def test_dependency_cycles_and_unknown_dependencies_are_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cycle"):
        Supervisor(
            [http_service(tmp_path, "a", ("b",)), http_service(tmp_path, "b", ("a",))],
            state_dir=tmp_path,
        )
    with pytest.raises(UserError, match="unknown 'nats'"):
        Supervisor([http_service(tmp_path, "a", ("nats",))], state_dir=tmp_path)
