"""The chart README's values table, generated from the `# --` comments in values.yaml.

Regenerate after changing values.yaml: `python -m tests.deploy.chart.values_table`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

CHART_DIR = Path(__file__).resolve().parents[3] / "charts" / "acoustid-stack"
BEGIN = "<!-- values-table:begin -->"
END = "<!-- values-table:end -->"
_KEY = re.compile(r"^(\s*)([A-Za-z0-9_]+):")


def values_table(values_yaml: str) -> str:
    """A markdown table: key, type, default, description — one row per documented key."""
    defaults = yaml.safe_load(values_yaml)
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    path: list[tuple[int, str]] = []
    comment: list[str] | None = None
    for line in values_yaml.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            comment = [stripped[4:].strip()]
        elif comment is not None and stripped.startswith("#"):
            comment.append(stripped[1:].strip())
        elif match := _KEY.match(line):
            indent = len(match.group(1))
            path = [entry for entry in path if entry[0] < indent] + [(indent, match.group(2))]
            if comment is not None:
                keys = [key for _, key in path]
                default: Any = defaults
                for key in keys:
                    default = default[key]
                shown = json.dumps(default).replace("|", "\\|")
                kind = type(default).__name__.replace("dict", "object").replace("NoneType", "null")
                rows.append(f"| `{'.'.join(keys)}` | {kind} | `{shown}` | {' '.join(comment)} |")
            comment = None
    return "\n".join(rows)


def readme_with_table(readme: str, table: str) -> str:
    head, _, rest = readme.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def main() -> None:
    readme = CHART_DIR / "README.md"
    table = values_table((CHART_DIR / "values.yaml").read_text())
    readme.write_text(readme_with_table(readme.read_text(), table))


if __name__ == "__main__":
    main()
