from __future__ import annotations

from collections.abc import Callable

import click
import pytest

from acoustid_stack.config import Settings, settings_from_context


def test_settings_from_context_loads_the_root_config_path_once(
    write_config: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACOUSTID_INDEX_NAME", raising=False)
    root = click.Context(click.Group(), obj={"config_path": write_config("[index]\nname = ctx\n")})
    child = click.Context(click.Command("x"), parent=root)
    settings = settings_from_context(child)
    assert isinstance(settings, Settings)
    assert settings.index.name == "ctx"
    assert settings_from_context(root) is settings
