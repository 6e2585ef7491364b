"""acoustid.conf.dist documents every key and is itself a valid configuration."""

from __future__ import annotations

import re
from pathlib import Path

from acoustid_stack.config import load_settings
from acoustid_stack.config.dist import render_dist
from acoustid_stack.config.table import INHERIT, KEYS, PATTERN_KEYS, SECTIONS

DIST = Path(__file__).resolve().parents[3] / "acoustid.conf.dist"


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^\[([^\]]+)\]$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_dist_file_is_the_rendering_of_the_key_table() -> None:
    assert DIST.read_text(encoding="utf-8") == render_dist(), (
        "acoustid.conf.dist drifted: run `acoustid-stack config dist > acoustid.conf.dist`"
    )


def test_dist_file_documents_every_key_with_its_variable_in_its_section() -> None:
    sections = _sections(DIST.read_text(encoding="utf-8"))
    assert list(sections) == list(SECTIONS)
    for key in KEYS:
        body = sections[key.section]
        assert re.search(rf"^#{re.escape(key.name)} =", body, re.MULTILINE), key.dotted
        assert f"Env: {key.env}." in body, key.dotted
        if key.secret:
            assert f"{key.name}_file / {key.env}_FILE" in body, key.dotted
    for pattern in PATTERN_KEYS:
        assert f"# {pattern.pattern}: " in sections[pattern.section], pattern.pattern


def test_dist_file_loads_as_is() -> None:
    assert load_settings(str(DIST), environ={}) == load_settings(environ={})


def test_dist_file_loads_with_every_example_uncommented(tmp_path: Path) -> None:
    uncommented = re.sub(r"^#(\S+ = \S.*)$", r"\1", DIST.read_text(encoding="utf-8"), flags=re.M)
    path = tmp_path / "acoustid.conf"
    path.write_text(uncommented, encoding="utf-8")
    settings = load_settings(str(path), environ={})
    from_file = [
        dotted for dotted, entry in settings.effective.items() if entry.source != "default"
    ]
    with_values = [key.dotted for key in KEYS if key.default not in (None, "", INHERIT)]
    assert set(with_values) <= set(from_file)
    assert settings.logging.levels == {"sqlalchemy.engine": "WARNING"}
    assert settings.rate_limit.for_ip("192.0.2.10") == 20.0
