"""What a PostgreSQL backup tool does for the backup and restore commands.

Two tools implement it: pgBackRest (`ops/pgbackrest.py`, Debian's package, used on hosts
and by drills on Debian's PostgreSQL) and PostgreSQL's own pg_basebackup + basic_archive
(`ops/basebackup.py`, for any server version, used by `acoustid-stack up`). Which one a
repository uses is recorded in it when it is configured (`ops/postgres_backups.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from psycopg.conninfo import make_conninfo

from acoustid_stack.local.credentials import POSTGRES_USER, StackSecrets
from acoustid_stack.local.servers import LOOPBACK


@dataclass(frozen=True)
class Cluster:
    """The PostgreSQL cluster being backed up: its data folder, port and socket folder
    (default: the data folder; a deep one exceeds the 107-byte socket path limit)."""

    data_dir: Path
    port: int
    socket_dir: Path | None = None

    @property
    def socket(self) -> Path:
        return self.socket_dir or self.data_dir

    @property
    def secrets(self) -> StackSecrets:
        """The secrets of the stack folder holding the data folder (`up`, drills)."""
        return StackSecrets(self.data_dir.parent)

    def conninfo(self) -> str:
        """libpq keywords reaching the server over loopback as the superuser, the password
        read from the stack's pgpass (when it has one)."""
        passfile = self.secrets.pgpass
        return make_conninfo(
            host=LOOPBACK,
            port=self.port,
            user=POSTGRES_USER,
            dbname="postgres",
            passfile=str(passfile) if passfile.exists() else None,
        )

    def tool_env(self) -> dict[str, str]:
        """The environment of a PostgreSQL tool (pg_basebackup, pgBackRest) run on it."""
        return self.secrets.pgpass_env()


@dataclass(frozen=True)
class BaseBackup:
    """One base backup in a repository."""

    label: str
    kind: str  # full, diff or incr
    stopped_at: datetime
    size: int


class PostgresBackups(Protocol):
    """Base backups + continuous WAL archive of one cluster, and restores from them."""

    #: the tool's name as `backup list` and error messages show it
    tool: str

    def cluster(self) -> Cluster:
        """The cluster this repository backs up (a failover re-configures it)."""

    def archive_settings(self) -> dict[str, str]:
        """postgresql.conf settings that archive every finished WAL file here."""

    def prepare(self) -> None:
        """Once the server runs with archive_settings(): get the repository ready."""

    def backup(self, kind: str | None = None) -> BaseBackup:
        """Take a base backup (`kind` full/diff/incr where the tool has them; None: the
        tool's default) and expire those beyond retention; the new backup."""

    def backups(self) -> list[BaseBackup]:
        """Base backups in the repository, oldest first."""

    def wal_range(self) -> tuple[str, str] | None:
        """The oldest and newest archived WAL file, or None when nothing is archived."""

    def restore(
        self, data_dir: Path, *, target_time: datetime | None = None, archive: bool = True
    ) -> None:
        """Replace `data_dir` by a base backup set up to recover from the archive: to the
        end of it, or to `target_time` (then promote). `archive=False` keeps the copy from
        archiving into this repository (a scratch copy must never)."""
