"""The Grafana dashboard: every query parses as PromQL, panels are laid out without overlap,
and the data source is a variable (the dashboard works in any Grafana)."""

from __future__ import annotations

import pytest

from monitoring_support import dashboard_queries, load_dashboard, metric_names

pytestmark = pytest.mark.deploy

DASHBOARD = load_dashboard()


@pytest.mark.parametrize("query", dashboard_queries(DASHBOARD))
def test_the_query_parses_as_promql(query: str) -> None:
    assert metric_names(query)


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels = DASHBOARD["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"panel {panel['title']!r} overlaps another"
        cells |= mine


def test_every_query_uses_the_datasource_variable() -> None:
    (variable,) = DASHBOARD["templating"]["list"]
    assert variable == {**variable, "name": "datasource", "type": "datasource"}
    for panel in DASHBOARD["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"


def test_the_dashboard_covers_what_operators_asked_for() -> None:
    """Request rates and latencies per endpoint, lookups matched/unmatched, submissions and
    imports per second, pending, index search latency and segments, backup ages."""
    names = set().union(*(metric_names(q) for q in dashboard_queries(DASHBOARD)))
    assert {
        "api_requests_total",
        "api_request_duration_seconds_bucket",
        "api_lookup_matches_total",
        "api_lookup_searches_total",
        "new_submissions_total",
        "worker_imports_total",
        "acoustid_submissions_pending",
        "fpindex_search_duration_seconds_bucket",
        "fpindex_segment_count",
        "acoustid_backup_last_success_timestamp_seconds",
        "cron_index_snapshot_last_success_timestamp_seconds",
    } <= names
