from __future__ import annotations

import dataclasses

from acoustid_stack.config import Settings, load_settings
from acoustid_stack.config.table import KEYS, KEYS_BY_NAME, PATTERN_KEYS, SECTIONS, keys_of


def test_every_key_has_its_own_environment_variable() -> None:
    names = [key.env for key in KEYS]
    assert len(names) == len(set(names))


def test_no_plain_variable_is_mistaken_for_a_pattern_or_secret_file() -> None:
    pattern_prefixes = [p.env_prefix for p in PATTERN_KEYS]
    for key in KEYS:
        assert not any(key.env.startswith(prefix) for prefix in pattern_prefixes), key.env
        base = KEYS_BY_NAME.get((key.section, key.name.removesuffix("_file")))
        assert base is None or base is key or not base.secret, key.env


def test_every_section_of_the_table_is_a_settings_field_with_matching_attributes() -> None:
    settings = load_settings(environ={})
    for section in SECTIONS:
        keys = keys_of(section)
        if section == "database":  # shared values only reach the per-database objects
            continue
        path = section.replace(".ro", "_ro").split(".")
        target: object = settings
        for part in path[:-1]:
            target = getattr(target, part)
        target = getattr(target, path[-1])
        fields = {field.name for field in dataclasses.fields(target)}  # type: ignore[arg-type]
        assert {key.attribute for key in keys} <= fields, section


def test_effective_values_cover_every_key_in_table_order() -> None:
    settings = load_settings(environ={})
    assert list(settings.effective) == [key.dotted for key in KEYS]
    assert isinstance(settings, Settings)
