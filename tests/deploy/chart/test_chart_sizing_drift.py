"""values-<profile>.yaml and the sized defaults in values.yaml are what `sizing export` writes."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from acoustid_stack.sizing import helm_values, load_sizing
from acoustid_stack.sizing_commands import render_export

from .conftest import CHART_DIR

pytestmark = pytest.mark.deploy


def leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(leaves(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@pytest.mark.parametrize("profile", ["minimum", "production"])
def test_profile_values_file_is_exactly_the_sizing_export(profile: str) -> None:
    expected = render_export(load_sizing().profile(profile), "helm")
    actual = (CHART_DIR / f"values-{profile}.yaml").read_text()
    assert actual == expected, (
        f"charts/acoustid-stack/values-{profile}.yaml drifted from the sizing table; regenerate: "
        f"acoustid-stack sizing export --profile {profile} --target helm "
        f"--output charts/acoustid-stack/values-{profile}.yaml"
    )


def test_chart_defaults_are_the_minimum_profile() -> None:
    defaults = leaves(yaml.safe_load((CHART_DIR / "values.yaml").read_text()))
    sized = leaves(helm_values(load_sizing().profile("minimum")))
    drifted = {
        key: (defaults.get(key), value)
        for key, value in sized.items()
        if defaults.get(key) != value
    }
    assert drifted == {}, "values.yaml sized defaults differ from the minimum profile"
