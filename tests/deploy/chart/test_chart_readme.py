"""The README's values table is generated from values.yaml, never hand-edited."""

from __future__ import annotations

import pytest

from .values_table import CHART_DIR, readme_with_table, values_table

pytestmark = pytest.mark.deploy


def test_readme_values_table_matches_values_yaml() -> None:
    readme = (CHART_DIR / "README.md").read_text()
    table = values_table((CHART_DIR / "values.yaml").read_text())
    assert readme == readme_with_table(readme, table), (
        "charts/acoustid-stack/README.md is stale: run python -m tests.deploy.chart.values_table"
    )


def test_every_value_is_documented() -> None:
    import yaml

    values_yaml = (CHART_DIR / "values.yaml").read_text()
    documented = {row.split("`")[1] for row in values_table(values_yaml).splitlines()[2:]}

    def leaves(tree: dict[str, object], prefix: str = "") -> set[str]:
        found: set[str] = set()
        for key, value in tree.items():
            dotted = f"{prefix}{key}"
            if dotted in documented:
                continue
            if isinstance(value, dict) and value:
                found |= leaves(value, f"{dotted}.")
            else:
                found.add(dotted)
        return found

    assert leaves(yaml.safe_load(values_yaml)) == set()
