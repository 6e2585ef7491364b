"""Which PostgreSQL backup tool a repository uses, recorded by the file that configures it:
`pgbackrest.conf` (pgBackRest) or `basebackup.json` (pg_basebackup + basic_archive)."""

from __future__ import annotations

from typing import Literal

from acoustid_stack.errors import UserError
from acoustid_stack.ops.basebackup import BaseBackups
from acoustid_stack.ops.interfaces import Cluster, PostgresBackups
from acoustid_stack.ops.layout import BackupRepository
from acoustid_stack.ops.pgbackrest import PgBackRest

Tool = Literal["pgbackrest", "basebackup"]


def configure_backups(repo: BackupRepository, cluster: Cluster, tool: Tool) -> PostgresBackups:
    """Set the repository up to back up `cluster` with `tool`."""
    if tool == "pgbackrest":
        return PgBackRest.configure(repo.pgbackrest_config, repo.pgbackrest_repo, cluster)
    return BaseBackups.configure(repo.basebackup_config, cluster)


def configured(repo: BackupRepository) -> bool:
    return repo.pgbackrest_config.exists() or repo.basebackup_config.exists()


def open_backups(repo: BackupRepository) -> PostgresBackups:
    """The tool the repository was configured with."""
    if repo.pgbackrest_config.exists():
        return PgBackRest(repo.pgbackrest_config)
    if repo.basebackup_config.exists():
        return BaseBackups(repo.basebackup_config)
    raise UserError(
        f"{repo.root} has no PostgreSQL backup configuration (neither pgbackrest.conf nor "
        "basebackup.json); `acoustid-stack up` and the playbooks write one for the servers "
        "they run; `--what dump,index,redis` backs up the rest"
    )


def reconfigure(repo: BackupRepository, cluster: Cluster) -> PostgresBackups:
    """Point the repository's tool at another cluster (after a failover)."""
    tool: Tool = "pgbackrest" if repo.pgbackrest_config.exists() else "basebackup"
    open_backups(repo)  # a repository without a tool is an error, not a new one
    return configure_backups(repo, cluster, tool)
