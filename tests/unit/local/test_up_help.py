"""`acoustid-stack up --help` as a newcomer reads it."""

from __future__ import annotations

import re

from click.testing import CliRunner

from acoustid_stack.cli import cli
from acoustid_stack.local.stack import default_data_dir
from acoustid_stack.sizing import load_sizing


def test_every_option_of_up_is_explained_with_real_defaults_and_choices() -> None:
    result = CliRunner().invoke(cli, ["up", "--help"], terminal_width=400)
    assert result.exit_code == 0
    options = result.output.split("Options:")[1].strip().splitlines()
    assert len(options) >= 6
    for line in options:
        name, _, help_text = line.strip().partition("  ")
        assert help_text.strip(), f"{name} has no help"
    assert f"[default: {default_data_dir()}]" in result.output
    profiles = "|".join(sorted(load_sizing().profiles))
    assert re.search(rf"--profile \[{profiles}\]", result.output)


def test_an_unknown_profile_is_refused_naming_the_known_ones() -> None:
    result = CliRunner().invoke(cli, ["up", "--profile", "huge"])
    assert result.exit_code == 2
    for name in load_sizing().profiles:
        assert repr(name) in result.output
