"""Passwords of a local stack's servers (issue 17 item 1).

`up` (and a drill) makes one random password per server on its first start and keeps it in
the data folder, readable by its owner only (0600); a second start reuses them. The app
reads them as `*_file` secrets of acoustid.conf; PostgreSQL's own tools read a PGPASSFILE.
No password is ever put on a command line, where `ps` shows it to every local account.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

#: the NATS user the app connects as
NATS_USER = "acoustid"
#: PostgreSQL's superuser, the role a local stack's app and tools connect as
POSTGRES_USER = "postgres"


def write_secret(path: Path, value: str, *, owner: str | None = None) -> None:
    """`value` into `path`, created 0600 (never readable by others, not even for a moment),
    owned by `owner` when given (a server running as that user reads it)."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value)
    if owner:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def ensure_secret(path: Path, *, owner: str | None = None) -> str:
    """The password kept in `path`, made (random, 0600) when there is none yet."""
    if not path.exists():
        write_secret(path, secrets.token_urlsafe(32), owner=owner)
    return path.read_text().strip()


def pgpass_line(password: str, user: str = "*") -> str:
    """A ~/.pgpass line matching every host, port and database."""
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    return f"*:*:*:{user}:{escaped}\n"


@dataclass(frozen=True)
class StackSecrets:
    """The secret files of one stack folder."""

    root: Path

    @property
    def postgresql(self) -> Path:
        """The superuser's password: initdb's --pwfile, the app's database.password_file."""
        return self.root / "postgresql-password"

    @property
    def pgpass(self) -> Path:
        """The same password as a PGPASSFILE for pg_basebackup, pgBackRest and replicas."""
        return self.root / "pgpass"

    @property
    def redis(self) -> Path:
        return self.root / "redis-password"

    @property
    def nats(self) -> Path:
        return self.root / "nats-password"

    def ensure(self, *, postgres_owner: str | None) -> None:
        """Make the missing ones; PostgreSQL's two are owned by the user the server (and its
        tools) run as."""
        self.root.mkdir(parents=True, exist_ok=True)
        password = ensure_secret(self.postgresql, owner=postgres_owner)
        if not self.pgpass.exists():
            write_secret(self.pgpass, pgpass_line(password, POSTGRES_USER), owner=postgres_owner)
        ensure_secret(self.redis)
        ensure_secret(self.nats)

    def pgpass_env(self) -> dict[str, str]:
        """This process's environment plus PGPASSFILE, for a libpq tool of this stack."""
        env = dict(os.environ)
        if self.pgpass.exists():
            env["PGPASSFILE"] = str(self.pgpass)
        return env


@contextlib.contextmanager
def libpq_tool_login(conninfo: str) -> Iterator[tuple[str, dict[str, str]]]:
    """`conninfo` without its password, and an environment whose PGPASSFILE (0600, removed
    afterwards) holds it: how a libpq tool (pg_dump, pg_restore) gets a password."""
    params = {k: v for k, v in conninfo_to_dict(conninfo).items() if v is not None}
    password = params.pop("password", None)
    env = dict(os.environ)
    if not password:
        yield make_conninfo("", **params), env
        return
    with tempfile.TemporaryDirectory(prefix="acoustid-pgpass-") as folder:
        passfile = Path(folder) / "pgpass"
        write_secret(passfile, pgpass_line(str(password)))
        env["PGPASSFILE"] = str(passfile)
        yield make_conninfo("", **params), env
