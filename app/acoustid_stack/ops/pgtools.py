"""Which PostgreSQL installation a backup step runs: Debian's or the pip-shipped one.

A stack may run Debian's PostgreSQL 15 (hosts, drills) or the `local` extra's PostgreSQL 18
(`acoustid-stack up`), and both may be installed side by side. Client tools read and write
older servers' formats but not newer ones (pg_restore 15 refuses a PostgreSQL 18 dump), and
a server only opens a data folder of its own major version: every step picks the
installation by version instead of taking whichever comes first on PATH.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import psycopg

from acoustid_stack.errors import UserError
from acoustid_stack.local.binaries import find_binary
from acoustid_stack.local.servers import postgres_binary

_VERSION = re.compile(r"\(PostgreSQL\) (\d+)")


def binary_major(path: Path) -> int:
    """The major version `path --version` reports (`pg_dump (PostgreSQL) 18.1` → 18); 0 when
    it does not say."""
    output = subprocess.run(
        [str(path), "--version"], capture_output=True, text=True, check=False, timeout=30
    ).stdout
    found = _VERSION.search(output)
    return int(found[1]) if found else 0


def server_major(conninfo: str) -> int:
    """The major version of the server at `conninfo`."""
    try:
        with psycopg.connect(conninfo, connect_timeout=10) as conn:
            row = conn.execute("SHOW server_version_num").fetchone()
    except psycopg.OperationalError as exc:
        raise UserError(f"PostgreSQL does not answer: {exc}".strip()) from exc
    return int(row[0]) // 10000 if row else 0


def data_dir_major(data_dir: Path) -> int:
    """The major version of the cluster in `data_dir` (its PG_VERSION file)."""
    try:
        return int((data_dir / "PG_VERSION").read_text().strip())
    except (OSError, ValueError) as exc:
        raise UserError(f"{data_dir} holds no PostgreSQL cluster: {exc}") from exc


def prefer_pip_for(program: str, major: int, *, exact: bool = False) -> bool:
    """The `prefer_pip` flag of local.binaries that finds a `program` of version `major`
    (or newer, unless `exact`): system packages are tried first, then the pip ones."""
    seen: dict[str, int] = {}
    for prefer_pip in (False, True):
        found = find_binary(program, prefer_pip=prefer_pip)
        if found is None:
            continue
        version = seen.setdefault(str(found), binary_major(found))
        if version == major or (version > major and not exact):
            return prefer_pip
    wanted = f"PostgreSQL {major}" + ("" if exact else " or newer")
    have = f"; found {', '.join(f'{p} ({v})' for p, v in seen.items())}" if seen else ""
    hint = (
        "pip install 'acoustid-stack[local]'"
        if major >= 16
        else f"apt-get install postgresql-{major}"
    )
    raise UserError(f"no {program} of {wanted}{have}; {hint}")


def tool_for(program: str, major: int, *, beside: Path, exact: bool = False) -> Path:
    """`program` of an installation of version `major` (or newer), runnable by the user
    PostgreSQL runs as (a pip install under /root is staged `beside` a data folder)."""
    return postgres_binary(
        program, beside=beside, prefer_pip=prefer_pip_for(program, major, exact=exact)
    )
