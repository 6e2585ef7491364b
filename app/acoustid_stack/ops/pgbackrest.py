"""pgBackRest (Debian package `pgbackrest`): base backups, WAL archive, point-in-time restore.

pgBackRest runs as the user that owns the PostgreSQL data (`postgres` when we are root),
with its lock and log folders inside the repository folder so nothing outside it is touched.
Debian 12's pgBackRest 2.45 supports PostgreSQL up to 15: hosts and Debian drills use it;
`up` stacks (PostgreSQL 18) use ops/basebackup.py.
"""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from acoustid_stack.errors import UserError
from acoustid_stack.local.process import run_as
from acoustid_stack.local.servers import chown_tree, grant_traversal, unprivileged_user
from acoustid_stack.ops.interfaces import BaseBackup, Cluster

STANZA = "acoustid"
TIMEOUT = 300.0
#: base backups kept (with the WAL they need); older ones are expired after each backup
RETENTION_FULL = 2


class PgBackRest:
    """One stanza in one repository, described by a pgbackrest.conf we write."""

    tool = "pgBackRest"

    def __init__(self, config: Path, *, stanza: str = STANZA) -> None:
        self.config = config
        self.stanza = stanza
        self.user = unprivileged_user()

    @classmethod
    def configure(
        cls, config: Path, repo: Path, cluster: Cluster, *, stanza: str = STANZA
    ) -> PgBackRest:
        """Write (or rewrite, e.g. after a failover) the configuration for `cluster`."""
        if shutil.which("pgbackrest") is None:
            raise UserError("pgbackrest is not installed; apt-get install pgbackrest")
        for folder in (repo / "lock", repo / "log"):
            folder.mkdir(parents=True, exist_ok=True)
        ini = configparser.ConfigParser(interpolation=None)
        ini["global"] = {
            "repo1-path": str(repo),
            # pgBackRest expires base backups and the WAL they need; other kinds use
            # ops.retention
            "repo1-retention-full": str(RETENTION_FULL),
            "lock-path": str(repo / "lock"),
            "log-path": str(repo / "log"),
            "log-level-console": "warn",
            "log-level-file": "info",
            "start-fast": "y",
            "compress-type": "lz4",
            "archive-timeout": "60",
        }
        ini[stanza] = {
            "pg1-path": str(cluster.data_dir),
            "pg1-port": str(cluster.port),
            "pg1-socket-path": str(cluster.socket),
            "pg1-user": "postgres",
        }
        with config.open("w") as handle:
            ini.write(handle)
        tool = cls(config, stanza=stanza)
        if tool.user:
            grant_traversal(repo, up_to=repo.parent)
            chown_tree(repo, tool.user)
        return tool

    def cluster(self) -> Cluster:
        ini = configparser.ConfigParser(interpolation=None)
        if not ini.read(self.config):
            raise UserError(f"{self.config} is missing; the stack has no pgBackRest repository")
        section = ini[self.stanza]
        return Cluster(
            Path(section["pg1-path"]), int(section["pg1-port"]), Path(section["pg1-socket-path"])
        )

    def archive_command(self) -> str:
        """PostgreSQL's archive_command: push each finished WAL file to the repository."""
        return f"pgbackrest --config={self.config} --stanza={self.stanza} archive-push %p"

    def archive_settings(self) -> dict[str, str]:
        return {"archive_mode": "on", "archive_command": self.archive_command()}

    def prepare(self) -> None:
        self.stanza_create()

    def run(self, *args: str, timeout: float = TIMEOUT) -> str:
        """Run one pgbackrest command; its stdout, or a UserError quoting its error."""
        argv = ["pgbackrest", f"--config={self.config}", f"--stanza={self.stanza}", *args]
        try:
            result = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                cwd="/",
                env={**self.cluster().tool_env(), "PGBACKREST_CONFIG": str(self.config)},
                **run_as(self.user),
            )
        except subprocess.TimeoutExpired:
            raise UserError(
                f"pgbackrest {args[-1]} did not finish within {timeout:.0f} s"
            ) from None
        if result.returncode != 0:
            message = (result.stderr.strip() or result.stdout.strip()).splitlines()
            raise UserError(f"pgbackrest {' '.join(args)} failed: {' '.join(message[-3:])}")
        return str(result.stdout)

    def stanza_create(self) -> None:
        self.run("stanza-create")

    def backup(self, kind: str | None = None) -> BaseBackup:
        """`kind` full/diff/incr; by default incr, full when there is none yet."""
        if kind is None:
            kind = "incr" if self.backups() else "full"
        if kind not in ("full", "diff", "incr"):
            raise UserError(f"backup type must be full, diff or incr, not {kind!r}")
        self.run(f"--type={kind}", "backup")
        return self.backups()[-1]

    def backups(self) -> list[BaseBackup]:
        return [
            BaseBackup(
                label=entry["label"],
                kind=entry["type"],
                stopped_at=datetime.fromtimestamp(entry["timestamp"]["stop"], UTC),
                size=int(entry["info"]["repository"]["delta"]),
            )
            for entry in self.info().get("backup", [])
        ]

    def wal_range(self) -> tuple[str, str] | None:
        archive = self.info().get("archive") or []
        if not archive or not archive[-1].get("min"):
            return None
        return str(archive[-1]["min"]), str(archive[-1]["max"])

    def info(self) -> dict[str, Any]:
        """The stanza's entry of `pgbackrest info --output=json` (backups, archive range)."""
        entries: list[dict[str, Any]] = json.loads(self.run("--output=json", "info"))
        for entry in entries:
            if entry.get("name") == self.stanza:
                return entry
        return {"name": self.stanza, "backup": [], "archive": []}

    def restore(
        self, data_dir: Path, *, target_time: datetime | None = None, archive: bool = True
    ) -> None:
        """pgBackRest picks the newest backup that ends before `target_time`."""
        if data_dir.exists():
            shutil.rmtree(data_dir)
        data_dir.mkdir(parents=True)
        data_dir.chmod(0o700)
        if self.user:
            grant_traversal(data_dir, up_to=data_dir.parent)
            chown_tree(data_dir, self.user)
        args = [f"--pg1-path={data_dir}"]
        if target_time:
            target = target_time.astimezone(UTC).isoformat(sep=" ")
            args += ["--type=time", f"--target={target}", "--target-action=promote"]
        if not archive:
            args.append("--archive-mode=off")
        self.run(*args, "restore")
