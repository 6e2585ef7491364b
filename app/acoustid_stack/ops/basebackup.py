"""Base backups and WAL archive with PostgreSQL's own tools: pg_basebackup + basic_archive.

Why not pgBackRest everywhere: Debian 12's pgBackRest 2.45 stops at PostgreSQL 15, and
`acoustid-stack up` runs the `local` extra's PostgreSQL 18 on machines without system
packages. pg_basebackup and the basic_archive module ship with every PostgreSQL (the pip
one included), so this works for any server version with nothing else installed.

Repository (inside the backup folder): `basebackup.json` names the cluster;
`basebackup/wal/` is the archive basic_archive writes (each file fsynced before PostgreSQL
recycles it); `basebackup/base/<stamp>/` are plain-format base backups (with the WAL to
make each consistent, and pg_basebackup's `backup_manifest`), `meta.json` written last.
A restore copies one back, writes `recovery.signal` and a `restore_command` reading the
archive, and PostgreSQL replays to the end of the archive or to a target time.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from acoustid_stack.errors import UserError
from acoustid_stack.local.process import run_as
from acoustid_stack.local.servers import chown_tree, grant_traversal, unprivileged_user
from acoustid_stack.ops.interfaces import BaseBackup, Cluster
from acoustid_stack.ops.layout import folder_size, stamp
from acoustid_stack.ops.pgbackrest import RETENTION_FULL
from acoustid_stack.ops.pgtools import data_dir_major, server_major, tool_for

#: a base backup of a large database takes long; one that hangs for this long has failed
TIMEOUT = 6 * 3600.0
_WAL_FILE = re.compile(r"^[0-9A-F]{24}(\.partial|\.[0-9A-F]{8}\.backup)?$")
_START_WAL = re.compile(r"^START WAL LOCATION: .* \(file ([0-9A-F]{24})\)$", re.MULTILINE)


def _conf_value(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _segment_key(name: str) -> str:
    """WAL files ordered by position: the timeline (first 8 digits) does not count."""
    return name[8:24]


class BaseBackups:
    """The repository described by `config` (basebackup.json)."""

    tool = "pg_basebackup"

    def __init__(self, config: Path) -> None:
        self.config = config
        self.root = config.with_suffix("")
        self.user = unprivileged_user()

    @property
    def wal_dir(self) -> Path:
        return self.root / "wal"

    @property
    def base_dir(self) -> Path:
        return self.root / "base"

    @classmethod
    def configure(cls, config: Path, cluster: Cluster) -> BaseBackups:
        """Write (or rewrite, e.g. after a failover) the configuration for `cluster`."""
        tool = cls(config)
        for folder in (tool.wal_dir, tool.base_dir):
            folder.mkdir(parents=True, exist_ok=True)
        config.write_text(
            json.dumps(
                {
                    "data_dir": str(cluster.data_dir),
                    "port": cluster.port,
                    "socket_dir": str(cluster.socket_dir) if cluster.socket_dir else None,
                },
                indent=2,
            )
        )
        if tool.user:
            # PostgreSQL's archiver and pg_basebackup write here as that user
            grant_traversal(tool.root, up_to=config.parent)
            chown_tree(tool.root, tool.user)
        return tool

    def cluster(self) -> Cluster:
        try:
            data = json.loads(self.config.read_text())
        except FileNotFoundError:
            raise UserError(
                f"{self.config} is missing; the stack has no PostgreSQL backup repository"
            ) from None
        socket_dir = data.get("socket_dir")
        return Cluster(
            Path(data["data_dir"]), int(data["port"]), Path(socket_dir) if socket_dir else None
        )

    def archive_settings(self) -> dict[str, str]:
        return {
            "archive_mode": "on",
            "archive_library": "basic_archive",
            "basic_archive.archive_directory": str(self.wal_dir),
        }

    def prepare(self) -> None:
        """Nothing to create beyond configure()'s folders."""

    def backup(self, kind: str | None = None) -> BaseBackup:
        if kind not in (None, "full"):
            raise UserError(f"{self.tool} takes full backups only; leave out --type {kind}")
        cluster = self.cluster()
        program = tool_for("pg_basebackup", server_major(cluster.conninfo()), beside=self.root)
        started = datetime.now(UTC)
        name = stamp(started)
        if (self.base_dir / name).exists():
            raise UserError(f"a base backup {name} exists already; try again in a second")
        # hidden until complete: backups() never lists a half-written one
        partial = self.base_dir / f".{name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        argv = [str(program), "-d", cluster.conninfo()]
        argv += ["-D", str(partial), "-F", "p", "-X", "stream", "-c", "fast"]
        argv += ["-l", f"acoustid {name}"]
        try:
            result = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                check=False,
                cwd="/",
                env=cluster.tool_env(),
                **run_as(self.user),
            )
        except subprocess.TimeoutExpired:
            shutil.rmtree(partial, ignore_errors=True)
            raise UserError(f"pg_basebackup did not finish within {TIMEOUT:.0f} s") from None
        if result.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise UserError(f"pg_basebackup failed: {result.stderr.strip()}")
        final = self.base_dir / name
        partial.rename(final)
        made = BaseBackup(
            label=name,
            kind="full",
            stopped_at=datetime.now(UTC),
            size=folder_size(final),
        )
        (final / "meta.json").write_text(
            json.dumps(
                {
                    "label": made.label,
                    "kind": made.kind,
                    "stopped_at": made.stopped_at.isoformat(),
                    "size": made.size,
                }
            )
        )
        self._expire()
        return made

    def backups(self) -> list[BaseBackup]:
        if not self.base_dir.is_dir():
            return []
        found = []
        for folder in sorted(self.base_dir.iterdir()):
            try:
                data = json.loads((folder / "meta.json").read_text())
            except (OSError, ValueError):
                continue  # unfinished or foreign: not a backup
            found.append(
                BaseBackup(
                    label=data["label"],
                    kind=data["kind"],
                    stopped_at=datetime.fromisoformat(data["stopped_at"]),
                    size=int(data["size"]),
                )
            )
        return found

    def _wal_files(self) -> list[str]:
        if not self.wal_dir.is_dir():
            return []
        names = [p.name for p in self.wal_dir.iterdir() if _WAL_FILE.match(p.name)]
        return sorted(names, key=lambda n: (_segment_key(n), n))

    def wal_range(self) -> tuple[str, str] | None:
        segments = [n for n in self._wal_files() if len(n) == 24]
        return (segments[0], segments[-1]) if segments else None

    def _expire(self) -> None:
        """Keep the newest RETENTION_FULL base backups and the WAL from the oldest kept
        one's start on (timeline history files are always kept: restores need them)."""
        kept = self.backups()[-RETENTION_FULL:]
        for folder in self.base_dir.iterdir():
            if folder.name not in {b.label for b in kept} and not folder.name.startswith("."):
                shutil.rmtree(folder)
        if not kept:
            return
        label = (self.base_dir / kept[0].label / "backup_label").read_text()
        start = _START_WAL.search(label)
        if start is None:
            return
        for name in self._wal_files():
            if _segment_key(name) < _segment_key(start[1]):
                (self.wal_dir / name).unlink(missing_ok=True)

    def check(self, base: Path) -> None:
        """pg_verifybackup: every file against the backup's manifest, and its WAL."""
        verifier = tool_for("pg_verifybackup", data_dir_major(base), beside=self.root, exact=True)
        result = subprocess.run(
            [str(verifier), "--quiet", "--ignore=meta.json", str(base)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            problems = result.stderr.strip().splitlines() or ["no output"]
            raise UserError(f"base backup {base.name} is damaged: {'; '.join(problems[:3])}")

    def restore(
        self, data_dir: Path, *, target_time: datetime | None = None, archive: bool = True
    ) -> None:
        """The newest base backup that ended before `target_time` (or the newest one),
        checked against its manifest first."""
        candidates = self.backups()
        if target_time is not None:
            candidates = [b for b in candidates if b.stopped_at <= target_time]
        if not candidates:
            when = f" that ended before {target_time.isoformat(sep=' ')}" if target_time else ""
            raise UserError(
                f"no base backup{when} in {self.base_dir}; "
                "take one with `acoustid-stack backup run --what postgresql`"
            )
        source = self.base_dir / candidates[-1].label
        self.check(source)
        if data_dir.exists():
            shutil.rmtree(data_dir)
        shutil.copytree(
            source, data_dir, ignore=shutil.ignore_patterns("backup_manifest", "meta.json")
        )
        data_dir.chmod(0o700)
        (data_dir / "recovery.signal").touch()
        settings = {"restore_command": f'cp "{self.wal_dir}/%f" "%p"'}
        if target_time is not None:
            settings["recovery_target_time"] = target_time.astimezone(UTC).isoformat(sep=" ")
            settings["recovery_target_action"] = "promote"
        if not archive:
            settings["archive_mode"] = "off"
        # postgresql.auto.conf is read last: these win over the copied postgresql.conf
        with (data_dir / "postgresql.auto.conf").open("a") as conf:
            conf.writelines(f"{key} = {_conf_value(value)}\n" for key, value in settings.items())
        if self.user:
            grant_traversal(data_dir, up_to=data_dir.parent)
            chown_tree(data_dir, self.user)
