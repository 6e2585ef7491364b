"""Supervise child processes: start in dependency order behind readiness checks, restart a
process that dies (with exponential backoff), stop everything in reverse order.

The supervisor publishes its state in a JSON file so that `acoustid-stack status` and
`acoustid-stack down` work from another terminal. A lock held on that folder keeps a
second supervisor off the same data; the kernel drops the lock when the supervisor dies,
so a crash leaves no stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from acoustid_stack.errors import UserError
from acoustid_stack.local.process import ManagedProcess

logger = logging.getLogger(__name__)

STATE_FILE = "supervisor.json"
LOCK_FILE = "supervisor.lock"
# a process that stayed up this long is healthy again: its next crash restarts quickly
STABLE_AFTER = 60.0


class State(StrEnum):
    PENDING = "pending"
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass
class Service:
    name: str
    process: ManagedProcess
    depends_on: tuple[str, ...] = ()
    port: int | None = None
    url: str | None = None
    start_timeout: float = 30.0
    state: State = State.PENDING
    restarts: int = 0
    _backoff: float = field(default=0.0, repr=False)
    _retry_at: float = field(default=0.0, repr=False)
    _started_at: float = field(default=0.0, repr=False)


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str
    pid: int | None
    port: int | None
    url: str | None
    restarts: int


def dependency_order(services: Sequence[Service]) -> list[Service]:
    """Services sorted so that each comes after what it depends on; cycles are errors."""
    by_name = {s.name: s for s in services}
    ordered: list[Service] = []
    visiting: set[str] = set()

    def visit(service: Service) -> None:
        if service in ordered:
            return
        if service.name in visiting:
            raise UserError(f"services depend on each other in a cycle through {service.name!r}")
        visiting.add(service.name)
        for dep in service.depends_on:
            if dep not in by_name:
                raise UserError(f"service {service.name!r} depends on unknown {dep!r}")
            visit(by_name[dep])
        visiting.discard(service.name)
        ordered.append(service)

    for service in services:
        visit(service)
    return ordered


class Supervisor:
    def __init__(
        self,
        services: Sequence[Service],
        *,
        state_dir: Path,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        on_change: Callable[[list[ServiceStatus]], None] | None = None,
        extra_state: dict[str, Any] | None = None,
    ) -> None:
        self.services = dependency_order(services)
        self.state_dir = state_dir
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.on_change = on_change
        self.extra_state = extra_state or {}
        self._lock: IO[str] | None = None

    def __enter__(self) -> Supervisor:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def acquire(self) -> None:
        """Take the data folder; another live supervisor there is an error."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        lock = (self.state_dir / LOCK_FILE).open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise UserError(
                f"another acoustid-stack is already running on {self.state_dir}; "
                "see `acoustid-stack status`, stop it with `acoustid-stack down`"
            ) from None
        self._lock = lock

    def start(self, only: Collection[str] | None = None) -> None:
        """Start the services not started yet (those named in `only`, or all) in order; if one
        fails, stop every service already up and re-raise."""
        try:
            for service in self.services:
                if service.state == State.PENDING and (only is None or service.name in only):
                    self._start(service)
        except BaseException:
            self.stop()
            raise

    def _start(self, service: Service) -> None:
        self._set(service, State.STARTING)
        service.process.start()
        service.process.wait_ready(service.start_timeout)
        service._started_at = time.monotonic()
        self._set(service, State.RUNNING)

    def poll(self) -> None:
        """One supervision pass: notice deaths, restart those whose backoff has elapsed."""
        for service in self.services:
            if service.state == State.RUNNING and not service.process.running():
                code = service.process.stop()
                logger.warning(
                    "%s exited with code %s (log: %s)", service.name, code, service.process.log_path
                )
                self._back_off(service)
            elif service.state == State.BACKOFF and time.monotonic() >= service._retry_at:
                service.restarts += 1
                try:
                    self._start(service)
                except UserError as exc:
                    logger.warning("%s did not come back: %s", service.name, exc)
                    self._back_off(service)

    def _back_off(self, service: Service) -> None:
        now = time.monotonic()
        stable = service._started_at and now - service._started_at >= STABLE_AFTER
        if stable or not service._backoff:
            service._backoff = self.backoff_initial
        else:
            service._backoff = min(service._backoff * 2, self.backoff_max)
        service._retry_at = now + service._backoff
        logger.warning("restarting %s in %.1f s", service.name, service._backoff)
        self._set(service, State.BACKOFF)

    def run(self, stop: threading.Event, interval: float = 0.5) -> None:
        while not stop.wait(interval):
            self.poll()

    def stop(self) -> None:
        """Stop in reverse dependency order, release the folder, remove the state file."""
        for service in reversed(self.services):
            if service.state != State.PENDING:
                service.process.stop()
                self._set(service, State.STOPPED)
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / STATE_FILE).unlink()
        if self._lock is not None:
            # unlinked while still held, so no later `up` can find a lock file left behind
            with contextlib.suppress(FileNotFoundError):
                (self.state_dir / LOCK_FILE).unlink()
            self._lock.close()
            self._lock = None

    def statuses(self) -> list[ServiceStatus]:
        return [
            ServiceStatus(
                s.name,
                s.state.value,
                s.process.pid if s.process.running() else None,
                s.port,
                s.url,
                s.restarts,
            )
            for s in self.services
        ]

    def _set(self, service: Service, state: State) -> None:
        service.state = state
        statuses = self.statuses()
        if self._lock is not None and state != State.STOPPED:
            self._write_state(statuses)
        if self.on_change is not None:
            self.on_change(statuses)

    def _write_state(self, statuses: list[ServiceStatus]) -> None:
        payload = {
            "supervisor_pid": os.getpid(),
            "services": [asdict(s) for s in statuses],
            **self.extra_state,
        }
        tmp = self.state_dir / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(payload, indent=2))
        tmp.replace(self.state_dir / STATE_FILE)


def read_state(state_dir: Path) -> dict[str, Any] | None:
    """The running supervisor's published state, or None when none runs there."""
    path = state_dir / STATE_FILE
    try:
        payload: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if not _alive(int(payload.get("supervisor_pid", 0))):
        return None  # left by a supervisor killed with SIGKILL
    return payload


def request_stop(
    state_dir: Path,
    timeout: float = 60.0,
    progress: Callable[[list[str]], None] | None = None,
) -> bool:
    """Ask the supervisor of `state_dir` to stop and wait until it has; False if none ran.

    `progress` is told, about once a second, the services whose processes still run."""
    payload = read_state(state_dir)
    if payload is None:
        return False
    pid = int(payload["supervisor_pid"])
    services = [(str(s["name"]), int(s["pid"] or 0)) for s in payload["services"]]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    next_report = 0.0
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        if progress is not None and time.monotonic() >= next_report:
            progress([name for name, service_pid in services if _alive(service_pid)])
            next_report = time.monotonic() + 1.0
        time.sleep(0.1)
    raise UserError(f"supervisor {pid} did not stop within {timeout:.0f} s; kill it with kill -9")


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # an exited process its parent has not reaped yet (a zombie) has stopped too
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"
