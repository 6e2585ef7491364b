"""Where a stack's pieces and its backups live on disk.

A stack folder is what `acoustid-stack up` or a drill creates: `ports.json`, `acoustid.conf`,
one folder per server (`postgresql`, `postgresql-replica`, `redis`, `index` or `index-N`,
`nats` or `nats-N`) and, by default, the backup repository in `backup/`. Production hosts
use the same repository layout on the backup volume.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from acoustid_stack.errors import UserError

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_INDEX_PORT = re.compile(r"^index(-\d+)?$")


def stamp(moment: datetime) -> str:
    """Folder name of a backup taken at `moment`: UTC, sortable, second precision."""
    return moment.astimezone(UTC).strftime(STAMP_FORMAT)


def folder_size(path: Path) -> int:
    """Bytes of every file under `path`."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, STAMP_FORMAT).replace(tzinfo=UTC)


@dataclass(frozen=True)
class StackFiles:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "acoustid.conf"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def ports_file(self) -> Path:
        return self.root / "ports.json"

    def ports(self) -> dict[str, int]:
        try:
            ports: dict[str, int] = json.loads(self.ports_file.read_text())
        except FileNotFoundError:
            raise UserError(
                f"{self.root} holds no stack (no ports.json); pass the --data-dir of "
                "`acoustid-stack up` or of a drill"
            ) from None
        return ports

    def save_ports(self, ports: dict[str, int]) -> None:
        tmp = self.ports_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(ports, indent=2))
        tmp.replace(self.ports_file)

    def server_dir(self, name: str) -> Path:
        return self.root / name

    def index_shards(self) -> list[str]:
        """Names of the index servers (`index`, or `index-1`, `index-2`, …) in shard order."""
        names = [name for name in self.ports() if _INDEX_PORT.match(name)]
        return sorted(names, key=lambda n: int(n.partition("-")[2] or 0))


@dataclass(frozen=True)
class BackupRepository:
    """A folder of backups: pgBackRest's repository plus one sub-folder per other kind,
    each holding `<stamp>/` folders (stamp = UTC time the backup was taken)."""

    root: Path

    @property
    def pgbackrest_config(self) -> Path:
        return self.root / "pgbackrest.conf"

    @property
    def pgbackrest_repo(self) -> Path:
        return self.root / "pgbackrest"

    @property
    def basebackup_config(self) -> Path:
        return self.root / "basebackup.json"

    @property
    def basebackup_repo(self) -> Path:
        return self.root / "basebackup"

    @property
    def status_file(self) -> Path:
        return self.root / "status.json"

    @property
    def metrics_file(self) -> Path:
        """Prometheus text file (node_exporter's textfile collector reads such files)."""
        return self.root / "acoustid_backup.prom"

    def kind_dir(self, kind: str) -> Path:
        return self.root / kind

    def new_backup_dir(self, kind: str, moment: datetime) -> Path:
        path = self.kind_dir(kind) / stamp(moment)
        path.mkdir(parents=True, exist_ok=False)
        return path

    def backups(self, kind: str) -> list[Path]:
        """Complete backups of `kind`, oldest first (a folder without DONE is unfinished)."""
        folder = self.kind_dir(kind)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if (p / "DONE").exists())

    def latest(self, kind: str) -> Path:
        found = self.backups(kind)
        if not found:
            raise UserError(
                f"no {kind} backup in {self.root}; take one with `acoustid-stack backup run`"
            )
        return found[-1]

    def kinds(self) -> list[str]:
        if not self.root.is_dir():
            return []
        skip = {self.pgbackrest_repo.name, self.basebackup_repo.name}
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name not in skip)
