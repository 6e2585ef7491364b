"""The alert rules file: every expression parses as PromQL, every rule says what it means and
links a runbook section that exists, and the chart reads this very file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import promql_parser
import pytest

from monitoring_support import MONITORING, load_rules

pytestmark = pytest.mark.deploy

REPO = MONITORING.parents[2]
CHART_FILES = REPO / "charts" / "acoustid-stack" / "files"
RUNBOOK_BASE = "https://github.com/acoustid-stack/acoustid-stack/blob/main/"
RULES = load_rules()


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {
        github_anchor(line.lstrip("#"))
        for line in page.read_text().splitlines()
        if line.startswith("#")
    }


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule["alert"])
def test_the_expression_parses_as_promql(rule: dict[str, Any]) -> None:
    promql_parser.parse(rule["expr"])


def test_the_parser_refuses_what_prometheus_refuses() -> None:
    broken = {
        "rate(api_requests_total[5m]": "unclosed left parenthesis",
        "sum by (job) (no_such_function(x))": "unknown function",
    }
    for expr, message in broken.items():
        with pytest.raises(ValueError, match=message):
            promql_parser.parse(expr)


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule["alert"])
def test_the_rule_says_what_it_means_and_how_urgent_it_is(rule: dict[str, Any]) -> None:
    assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
    assert re.fullmatch(r"\d+[smh]", rule["for"])


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule["alert"])
def test_the_runbook_url_names_a_section_of_a_page_in_runbooks(rule: dict[str, Any]) -> None:
    url = rule["annotations"]["runbook_url"]
    assert url.startswith(RUNBOOK_BASE), url
    parts = urlsplit(url)
    page = REPO / parts.path.removeprefix(urlsplit(RUNBOOK_BASE).path)
    assert page.parent == REPO / "runbooks", url
    assert page.is_file(), url
    assert parts.fragment in anchors(page), f"{page.name} has no section #{parts.fragment}"


def test_alert_names_are_unique_and_each_has_its_own_section_or_shares_one_named_there() -> None:
    names = [rule["alert"] for rule in RULES]
    assert len(names) == len(set(names))
    page = (REPO / "runbooks" / "alerts.md").read_text()
    for name in names:
        assert name in page, f"runbooks/alerts.md never names {name}"


def test_the_chart_reads_the_package_files_through_links_not_copies() -> None:
    for name in ("alerts.yml", "dashboard.json"):
        link = CHART_FILES / name
        assert link.is_symlink(), f"{link} must link to the package's file"
        assert link.resolve() == (MONITORING / name).resolve()


def test_the_package_ships_the_files() -> None:
    """Ansible installs them from the installed package (issue 20): they must be package data."""
    from importlib.resources import files

    shipped = files("acoustid_stack") / "monitoring"
    assert (shipped / "alerts.yml").read_text() == (MONITORING / "alerts.yml").read_text()
    assert (shipped / "dashboard.json").is_file()
