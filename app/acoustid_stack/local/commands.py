"""`acoustid-stack up | status | down`: the whole service on one machine."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from types import FrameType

import click
import psycopg
from rich.console import Console
from rich.live import Live
from rich.table import Table

from acoustid_stack.config import Settings, load_settings
from acoustid_stack.db.migrate import upgrade
from acoustid_stack.errors import UserError
from acoustid_stack.local.bootstrap import ensure_local_application
from acoustid_stack.local.demo import run_demo
from acoustid_stack.local.stack import Stack, StackOptions, default_data_dir
from acoustid_stack.local.supervisor import ServiceStatus, Supervisor, read_state, request_stop
from acoustid_stack.ops.restore import wait_writable
from acoustid_stack.sizing import load_sizing

STATE_COLOURS = {"running": "green", "starting": "yellow", "backoff": "red", "failed": "red"}

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=default_data_dir(),
    show_default=True,
    help="Folder holding every service's data; a second `up` resumes from it.",
)


def status_table(statuses: list[ServiceStatus] | list[dict[str, object]]) -> Table:
    table = Table(title="acoustid-stack", show_lines=False)
    for column in ("service", "state", "pid", "port", "url", "restarts"):
        table.add_column(column)
    for status in statuses:
        row = status if isinstance(status, dict) else status.__dict__
        state = str(row["state"])
        table.add_row(
            str(row["name"]),
            f"[{STATE_COLOURS.get(state, 'white')}]{state}[/]",
            str(row["pid"] or "-"),
            str(row["port"] or "-"),
            str(row["url"] or "-"),
            str(row["restarts"]),
        )
    return table


@click.command()
@data_dir_option
@click.option(
    "--use-system-services",
    is_flag=True,
    help="Use PostgreSQL/Redis/NATS already listening on their default ports, or from PATH.",
)
@click.option(
    "--profile",
    type=click.Choice(sorted(load_sizing().profiles)),
    default=None,
    help="Apply this sizing profile's PostgreSQL/Redis settings, scaled to this machine "
    "(details: `acoustid-stack sizing show`).",
)
@click.option(
    "--api-workers",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="api server processes (each answers lookups and submissions).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="Worker processes importing submissions from NATS.",
)
@click.option(
    "--demo",
    is_flag=True,
    help="Once up, submit generated songs, wait for their import and look them up.",
)
def up(
    *,
    data_dir: Path,
    use_system_services: bool,
    profile: str | None,
    api_workers: int,
    workers: int,
    demo: bool,
) -> None:
    """Run the whole service on this machine until Ctrl-C (or `acoustid-stack down`)."""
    options = StackOptions(
        data_dir=data_dir.resolve(),
        use_system_services=use_system_services,
        profile=profile,
        api_workers=api_workers,
        workers=workers,
    )
    started = time.monotonic()
    console = Console()
    stack = Stack(options)
    infrastructure = stack.infrastructure()
    services = infrastructure + stack.application()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    live = Live(status_table([]), console=console, refresh_per_second=4, transient=False)
    supervisor = Supervisor(
        services,
        state_dir=options.data_dir,
        on_change=lambda statuses: live.update(status_table(statuses)),
        extra_state={"api_url": stack.url("api"), "config": str(stack.config_path)},
    )
    try:
        # live first: the supervisor stops inside it, so the last table shows every stop
        with live, supervisor:
            supervisor.start(only=[s.name for s in infrastructure])
            if stop.is_set():
                return
            settings = load_settings(str(stack.config_path))
            # after `restore postgresql` the server first replays WAL up to its target
            wait_writable(settings, timeout=RECOVERY_TIMEOUT)
            _migrate(settings)
            client_key, user_key = ensure_local_application(settings)
            supervisor.start()
            elapsed = time.monotonic() - started
            live.console.print(
                f"[bold green]ready[/] in {elapsed:.1f} s\n"
                f"  API base URL  {stack.url('api')}/v2/\n"
                f"  API docs      {stack.url('api')}/v2/docs\n"
                f"  client key    [bold]{client_key}[/]   (application API key)\n"
                f"  user key      [bold]{user_key}[/]   (for /v2/submit)\n"
                f"  web           {stack.url('web')}\n"
                f"  data          {options.data_dir}\n"
                "Ctrl-C or `acoustid-stack down` stops everything."
            )
            if demo:
                run_demo(
                    api_url=stack.url("api"),
                    client_key=client_key,
                    user_key=user_key,
                    console=live.console,
                )
            supervisor.run(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.print("stopped; data kept in", str(options.data_dir))


#: how long `up` waits for PostgreSQL to finish a recovery (a restore replaying WAL)
RECOVERY_TIMEOUT = 600.0


def _migrate(settings: Settings) -> None:
    for change in upgrade(settings.database):
        if change.changed:
            click.echo(f"migrated {change.database}: {change.before} -> {change.after}")


@click.command()
@data_dir_option
def status(data_dir: Path) -> None:
    """Show the services of a running `acoustid-stack up`."""
    state = read_state(data_dir.resolve())
    if state is None:
        raise UserError(
            f"no acoustid-stack is running on {data_dir}; start one with `acoustid-stack up`"
        )
    Console().print(status_table(state["services"]))
    click.echo(f"API: {state.get('api_url')}/v2/   config: {state.get('config')}")
    try:
        client_key, user_key = ensure_local_application(load_settings(str(state["config"])))
    except psycopg.Error as exc:
        click.echo(f"keys: not readable while the database is not up ({exc.sqlstate or exc})")
    else:
        click.echo(f"client key: {client_key}   user key: {user_key}")


@click.command()
@data_dir_option
@click.option("--timeout", type=float, default=60.0, show_default=True)
def down(data_dir: Path, timeout: float) -> None:
    """Stop a running `acoustid-stack up` (from another terminal)."""
    console = Console()
    started = time.monotonic()
    with console.status("stopping") as spinner:

        def show(running: list[str]) -> None:
            waiting = f"stopping {', '.join(running)}" if running else "releasing the data folder"
            spinner.update(f"{waiting} ({time.monotonic() - started:.0f} s)")

        if not request_stop(data_dir.resolve(), timeout=timeout, progress=show):
            raise UserError(f"no acoustid-stack is running on {data_dir}")
    console.print(f"stopped in {time.monotonic() - started:.1f} s; data kept in {data_dir}")
