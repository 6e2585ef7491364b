"""Config test helpers. Tests pass ``environ`` explicitly and never read os.environ."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], str]:
    def write(text: str, name: str = "acoustid.conf") -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write
