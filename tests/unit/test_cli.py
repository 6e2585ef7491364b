from __future__ import annotations

import importlib
import subprocess
import sys

import click
from click.testing import CliRunner

from acoustid_stack.cli import COMMANDS, cli, short_help


def test_help_lists_every_command_with_the_sentence_click_would_show_uncut() -> None:
    output = CliRunner().invoke(cli, ["--help"], terminal_width=200).output.split("Commands:")[1]
    for name, target in COMMANDS.items():
        module, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        expected = command.get_short_help_str(limit=10_000)
        assert short_help(target) == expected
        assert f"{name}  " in output
        assert expected in " ".join(output.split())
    assert "..." not in output
    assert "…" not in output


def test_help_imports_no_command_module() -> None:
    probe = (
        "import sys\n"
        "from acoustid_stack.cli import cli\n"
        "try:\n"
        "    cli(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(done.stdout.split())
    assert "Commands:" in done.stdout
    commands = {target.partition(":")[0] for target in COMMANDS.values()}
    assert not commands & loaded, commands & loaded
