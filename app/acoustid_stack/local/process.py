"""A child process with a readiness check and a clean stop.

Failure policy: a process that exits before it is ready, or is not ready in time, is an
error that quotes the tail of its log, because that is where the reason is.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from acoustid_stack.errors import UserError

ReadyCheck = Callable[[], bool]


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def run_as(user: str | None) -> dict[str, Any]:
    """subprocess keyword arguments that drop to `user`, its primary group and no other.

    `user=` alone keeps root's group, which still opens root-group folders to the child.
    """
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now. Racy by nature; callers retry on a bind failure."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class ManagedProcess:
    """One server process: start, wait until ready, stop (SIGTERM, then SIGKILL)."""

    def __init__(
        self,
        *,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        ready: ReadyCheck,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.ready = ready
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.user = user
        self.stop_signal = stop_signal
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                **run_as(self.user),
                # own process group: a Ctrl-C in the terminal reaches the supervisor only,
                # which then stops children in order
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise UserError(
                    f"{self.name} exited during start-up; its log {self.log_path} ends with:\n"
                    + self.log_tail()
                )
            if self.ready():
                return
            time.sleep(0.05)
        self.stop()
        raise UserError(
            f"{self.name} was not ready after {timeout:.0f} s; its log {self.log_path} ends with:\n"
            + self.log_tail()
        )

    def stop(self, timeout: float = 15.0) -> int | None:
        """Stop the process and reap it; returns its exit code (None if never started)."""
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._popen.pid, self.stop_signal)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._popen.pid, signal.SIGKILL)
                self._popen.wait()
        return self._popen.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash would; used by recovery tests and drills."""
        if self._popen is not None and self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._popen.pid, signal.SIGKILL)
            self._popen.wait()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
