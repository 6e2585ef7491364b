"""`acoustid-stack backup …` and `acoustid-stack restore …`: the commands runbooks/ prints.

Both work on a stack folder (`--data-dir`, as `up` and drills create them: ports.json,
acoustid.conf, server folders) with its backup repository in `<data-dir>/backup` unless
`--repo` says otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from acoustid_stack.config import Settings, load_settings
from acoustid_stack.errors import UserError
from acoustid_stack.local.stack import default_data_dir
from acoustid_stack.ops import backups, health, jetstream, status
from acoustid_stack.ops import restore as restoring
from acoustid_stack.ops.layout import BackupRepository, StackFiles
from acoustid_stack.ops.postgres_backups import configured, open_backups
from acoustid_stack.ops.retention import Retention
from acoustid_stack.ops.verify import verify_all

KINDS = ("postgresql", "dump", "index", "redis")


class Target:
    """The stack folder, its repository and its settings, as the options name them."""

    def __init__(self, data_dir: Path, repo: Path | None, config: str | None) -> None:
        self.files = StackFiles(data_dir.resolve())
        self.repo = BackupRepository((repo or self.files.root / "backup").resolve())
        self._config = config or str(self.files.config)

    @property
    def settings(self) -> Settings:
        if not Path(self._config).exists():
            raise UserError(f"{self._config} is missing; is {self.files.root} a stack folder?")
        return load_settings(self._config)


def _stack_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option(
        "--repo",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Backup repository folder [default: <data-dir>/backup].",
    )(command)
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=default_data_dir,
        show_default="the user's data folder",
        help="Stack folder (of `acoustid-stack up` or a drill).",
    )(command)


def _target(ctx: click.Context, data_dir: Path, repo: Path | None) -> Target:
    root = ctx.find_root().obj or {}
    return Target(data_dir, repo, root.get("config_path"))


def _age(moment: datetime) -> str:
    seconds = int((datetime.now(UTC) - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


# ---- backup ------------------------------------------------------------------------


@click.group()
def backup() -> None:
    """Take, list, verify and prune backups (PostgreSQL, dumps, index, Redis)."""


@backup.command("run")
@_stack_options
@click.option(
    "--what",
    default=",".join(KINDS),
    show_default=True,
    help="Comma-separated kinds: postgresql (pgBackRest), dump (pg_dump -Fc), index, redis.",
)
@click.option(
    "--type",
    "backup_type",
    type=click.Choice(["full", "diff", "incr"]),
    default=None,
    help="pgBackRest backup type [default: incr, full when none exists]; pg_basebackup "
    "(the local stack's) takes full backups only.",
)
@click.pass_context
def run_backup(
    ctx: click.Context, data_dir: Path, repo: Path | None, what: str, backup_type: str | None
) -> None:
    """Take backups now (cron/systemd timers call this daily; WAL is archived continuously)."""
    target = _target(ctx, data_dir, repo)
    kinds = [k.strip() for k in what.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise UserError(f"unknown backup kind {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    settings = target.settings
    r = target.repo
    steps: dict[str, Callable[[], object]] = {
        "postgresql": lambda: backups.backup_postgresql(r, backup_type),
        "dump": lambda: backups.backup_dumps(r, settings),
        "index": lambda: backups.backup_index(r, target.files, settings),
        "redis": lambda: backups.backup_redis(r, settings),
    }
    for kind in kinds:
        started = datetime.now(UTC)
        try:
            steps[kind]()
        except Exception as exc:
            status.record(r, kind, event="failure", error=str(exc))
            raise
        seconds = (datetime.now(UTC) - started).total_seconds()
        click.echo(f"{kind}: backed up in {seconds:.1f} s")


@backup.command("list")
@_stack_options
@click.pass_context
def list_backups(ctx: click.Context, data_dir: Path, repo: Path | None) -> None:
    """Every backup with its age, size and whether `backup verify` checked it."""
    target = _target(ctx, data_dir, repo)
    r = target.repo
    recorded = status.read_status(r)
    table = Table(title=f"backups in {r.root}")
    for column in ("kind", "backup", "age", "size", "verified"):
        table.add_column(column)

    def verified(kind: str, taken: datetime) -> str:
        at = recorded.get(kind, {}).get("last_verified")
        if at and datetime.fromisoformat(at) >= taken:
            return "[green]yes[/]"
        return "[yellow]unverified[/]"

    if configured(r):
        postgres = open_backups(r)
        for made in postgres.backups():
            table.add_row(
                "postgresql",
                f"{made.label} ({made.kind}, {postgres.tool})",
                _age(made.stopped_at),
                _size(made.size),
                verified("postgresql", made.stopped_at),
            )
        wal = postgres.wal_range()
        if wal:
            table.add_row("postgresql", f"WAL {wal[0]} … {wal[1]}", "", "", "")
    for kind in r.kinds():
        for folder in r.backups(kind):
            data = backups.meta(folder)
            taken = datetime.fromisoformat(data["taken_at"])
            table.add_row(
                kind, folder.name, _age(taken), _size(data["bytes"]), verified(kind, taken)
            )
    Console().print(table)


@backup.command("latest")
@click.argument("kind")
@_stack_options
@click.pass_context
def latest(ctx: click.Context, kind: str, data_dir: Path, repo: Path | None) -> None:
    """Print the path of the newest backup file of KIND (dump, redis, index-1, …)."""
    folder = _target(ctx, data_dir, repo).repo.latest(kind)
    name = "snapshot.tar" if kind.startswith("index") else ""
    click.echo(str(folder / name) if name else str(folder))


@backup.command("verify")
@_stack_options
@click.pass_context
def verify(ctx: click.Context, data_dir: Path, repo: Path | None) -> None:
    """Restore the latest backups into a scratch folder and check them; exit 1 on a failure."""
    target = _target(ctx, data_dir, repo)
    results = verify_all(target.repo, target.files, target.settings)
    if not results:
        raise UserError(
            f"no backups in {target.repo.root}; take some with `acoustid-stack backup run`"
        )
    for result in results:
        mark = "ok" if result.ok else "FAILED"
        click.echo(f"{result.kind}: {mark}: {result.detail}")
        for name, count in result.counts.items():
            click.echo(f"  {name}: {count}")
    if not all(r.ok for r in results):
        sys.exit(1)


@backup.command("prune")
@_stack_options
@click.option("--daily", type=click.IntRange(1, 366), default=7, show_default=True)
@click.option("--weekly", type=click.IntRange(0, 520), default=4, show_default=True)
@click.pass_context
def prune(ctx: click.Context, data_dir: Path, repo: Path | None, daily: int, weekly: int) -> None:
    """Delete dumps, snapshots and Redis copies beyond the retention.

    pgBackRest expires its own base backups and WAL (repo1-retention-full)."""
    target = _target(ctx, data_dir, repo)
    removed = backups.prune(target.repo, Retention(daily=daily, weekly=weekly))
    click.echo(f"removed {len(removed)} backups")


@backup.command("status")
@_stack_options
@click.option(
    "--max-age",
    type=click.FloatRange(min=0.01),
    default=26.0,
    show_default=True,
    help="Hours after which a kind's last success counts as stale.",
)
@click.pass_context
def backup_status(ctx: click.Context, data_dir: Path, repo: Path | None, max_age: float) -> None:
    """Last success per kind; exit 1 when one is missing, failed last or older than --max-age."""
    target = _target(ctx, data_dir, repo)
    recorded = status.read_status(target.repo)
    stale = []
    for kind in KINDS:
        kinds = [k for k in recorded if k == kind or k.startswith(f"{kind}-")]
        for name in kinds or [kind]:
            entry = recorded.get(name, {})
            last = entry.get("last_success")
            age = (
                (datetime.now(UTC) - datetime.fromisoformat(last)).total_seconds() if last else None
            )
            failed = entry.get("last_failure", "") > (last or "")
            if age is None or age > max_age * 3600 or failed:
                stale.append(name)
            shown = _age(datetime.fromisoformat(last)) + " ago" if last else "never"
            click.echo(
                f"{name}: last success {shown}"
                + (f"; last failure: {entry.get('error')}" if failed else "")
            )
    if stale:
        raise UserError(f"backups stale or failing: {', '.join(stale)}")


# ---- restore -----------------------------------------------------------------------


@click.group()
def restore() -> None:
    """Recover a stack: failover, point-in-time restore, Redis, index catch-up, NATS."""


@restore.command("failover")
@_stack_options
@click.pass_context
def failover(ctx: click.Context, data_dir: Path, repo: Path | None) -> None:
    """Promote the streaming replica; point acoustid.conf and pgBackRest at it.

    Restart api, workers and cron afterwards so they connect to it.
    """
    target = _target(ctx, data_dir, repo)
    cluster = restoring.failover(target.files, target.repo)
    restoring.wait_writable(target.settings)
    click.echo(
        f"promoted {cluster.data_dir.name} (port {cluster.port}); acoustid.conf points at it"
    )


@restore.command("postgresql")
@_stack_options
@click.option(
    "--time",
    "target_time",
    default=None,
    help="Recover to this time, with its UTC offset (e.g. '2025-01-31 12:00:00+00:00'), "
    "instead of the newest WAL.",
)
@click.pass_context
def restore_postgresql(
    ctx: click.Context, data_dir: Path, repo: Path | None, target_time: str | None
) -> None:
    """Replace the primary's data by the latest base backup + WAL (PostgreSQL stopped)."""
    target = _target(ctx, data_dir, repo)
    cluster = restoring.restore_postgresql(target.repo, target_time=target_time)
    click.echo(f"restored into {cluster.data_dir}; start PostgreSQL on port {cluster.port}")


@restore.command("finish")
@_stack_options
@click.pass_context
def finish(ctx: click.Context, data_dir: Path, repo: Path | None) -> None:
    """After `restore postgresql` and a start: wait until it takes writes, clear the
    recovery target (replicas cloned later would stop at it) and skip submission ids that
    clients and NATS may already have seen."""
    target = _target(ctx, data_dir, repo)
    settings = target.settings
    restoring.wait_writable(settings)
    restoring.clear_recovery_target(settings)
    click.echo(
        f"PostgreSQL takes writes; next submission id: {restoring.advance_submission_ids(settings)}"
    )


@restore.command("redis")
@_stack_options
@click.pass_context
def restore_redis(ctx: click.Context, data_dir: Path, repo: Path | None) -> None:
    """Copy the latest RDB + AOF backup into the Redis folder (Redis stopped)."""
    target = _target(ctx, data_dir, repo)
    ports = target.files.ports()
    used = restoring.restore_redis(target.repo, target.files.server_dir("redis"), ports["redis"])
    click.echo(f"restored Redis from {used.name}; start Redis")


@restore.command("index-catch-up")
@_stack_options
@click.option(
    "--shard", default=None, help="Only this shard (index-1, index-2, …): since its snapshot."
)
@click.option(
    "--since", default=None, help="Changes since this time [default: the shard's latest snapshot]."
)
@click.pass_context
def index_catch_up(
    ctx: click.Context, data_dir: Path, repo: Path | None, shard: str | None, since: str | None
) -> None:
    """Re-apply fingerprint changes made after the index snapshot (fpindex_changelog)."""
    target = _target(ctx, data_dir, repo)
    settings = target.settings
    shards = target.files.index_shards()
    names = [shard] if shard else shards
    unknown = [n for n in names if n not in shards]
    if unknown:
        raise UserError(f"no index shard {unknown[0]!r}; this stack has {', '.join(shards)}")
    for name in names:
        if since:
            moment = datetime.fromisoformat(since)
        else:
            moment = restoring.snapshot_time(target.repo, name)
        url = settings.index.shards[shards.index(name)] if shard else None
        done = restoring.index_catch_up(settings, moment, shard=url)
        click.echo(
            f"{name}: {done.inserted} re-inserted, {done.deleted} deleted "
            f"since {done.since:%Y-%m-%d %H:%M:%S}"
        )


@restore.command("nats")
@_stack_options
@click.pass_context
def restore_nats(ctx: click.Context, data_dir: Path, repo: Path | None) -> None:
    """Recreate the submissions stream if needed and re-publish pending submissions."""
    target = _target(ctx, data_dir, repo)
    done = jetstream.republish_pending(target.settings)
    click.echo(
        f"{done.republished} of {done.pending} pending submissions re-published; "
        f"stream replicas {done.current_replicas}/{done.replicas} current"
    )


@restore.command("check")
@_stack_options
@click.pass_context
def check(ctx: click.Context, data_dir: Path, repo: Path | None) -> None:
    """Health of every part; exit 1 when one is down (degraded = up without redundancy)."""
    target = _target(ctx, data_dir, repo)
    checks = health.check_stack(target.settings, target.files, target.repo)
    colours = {health.OK: "green", health.DEGRADED: "yellow", health.DOWN: "red"}
    table = Table(title="stack health")
    for column in ("part", "state", "detail"):
        table.add_column(column)
    for c in checks:
        table.add_row(c.part, f"[{colours[c.state]}]{c.state}[/]", c.detail)
    Console().print(table)
    down = [c.part for c in checks if c.state == health.DOWN]
    if down:
        raise UserError(f"down: {', '.join(down)}")
