"""`acoustid-stack …`: the root command.

Sub-commands live beside the capability they drive (`<domain>/commands.py`) and are
imported only when invoked, so `--help` and `config check` stay fast and a broken
optional dependency of one face never breaks another.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import logging
import sys
from pathlib import Path
from typing import Any

import click

from acoustid_stack import __version__
from acoustid_stack.errors import UserError

# name -> "module:attribute" of a click command or group
COMMANDS: dict[str, str] = {
    "backup": "acoustid_stack.ops.commands:backup",
    "config": "acoustid_stack.config_commands:config",
    "db": "acoustid_stack.db.commands:db",
    "down": "acoustid_stack.local.commands:down",
    "drill": "acoustid_stack.ops.drills.commands:drill",
    "fingerprint": "acoustid_stack.fingerprint.commands:fingerprint",
    "index": "acoustid_stack.index.commands:index",
    "restore": "acoustid_stack.ops.commands:restore",
    "run": "acoustid_stack.run_commands:run",
    "sizing": "acoustid_stack.sizing_commands:sizing",
    "status": "acoustid_stack.local.commands:status",
    "up": "acoustid_stack.local.commands:up",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attribute = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise UserError(
                f"`{cmd_name}` is unavailable here: {exc}; reinstall with "
                "pip install 'acoustid-stack[local]' or check the installation"
            ) from exc
        command = getattr(module, attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # read from the source, not imported: importing every command took seconds
        rows = [(name, short_help(COMMANDS[name])) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def short_help(target: str) -> str:
    """The first sentence of a command's docstring, read from its module's source."""
    module_name, _, attribute = target.partition(":")
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        return "(unavailable: not installed)"
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == attribute:
            doc = " ".join(inspect.cleandoc(ast.get_docstring(node) or "").split("\n\n")[0].split())
            sentence, dot, _ = doc.partition(". ")
            return sentence + dot.strip()
    return ""


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="acoustid-stack")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="ACOUSTID_CONFIG",
    help="INI configuration file (default: $ACOUSTID_CONFIG; built-in defaults if unset).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Run, deploy and operate the AcoustID fingerprint service."""
    ctx.obj = {"config_path": config_path}


def main(argv: list[str] | None = None) -> Any:
    """Entry point: a UserError becomes one line on stderr and exit code 1, never a traceback."""
    try:
        return cli.main(args=argv, prog_name="acoustid-stack", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        logging.getLogger("acoustid_stack").debug("unhandled", exc_info=True)
        click.echo(f"error: unexpected {type(exc).__name__}: {exc}", err=True)
        click.echo("Run with ACOUSTID_LOGGING_LEVEL=DEBUG for details.", err=True)
        sys.exit(2)
