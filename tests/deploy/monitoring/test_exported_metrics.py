"""Every metric an alert or a dashboard query names is exported: by our processes, as a live
scrape of them shows (not a list typed here), or by an upstream exporter named below."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
import yaml

from monitoring_support import dashboard_queries, load_dashboard, load_rules, metric_names

pytestmark = [pytest.mark.deploy, pytest.mark.integration, pytest.mark.slow]

SHARED_CHARTS = Path(__file__).resolve().parents[4] / "shared" / "charts"

#: metric -> what exports it; only metrics no process of ours exports
UPSTREAM: dict[str, str] = {
    "up": "Prometheus itself (scrape health of every target)",
    "jetstream_consumer_num_pending": "prometheus-nats-exporter -jsz=all (NATS chart promExporter)",
    "jetstream_consumer_num_ack_pending": "prometheus-nats-exporter -jsz=all",
    "cnpg_pg_replication_lag": "CloudNativePG default monitoring queries (pg_replication)",
    "cnpg_pg_stat_archiver_last_failed_time": "CloudNativePG default queries (pg_stat_archiver)",
    "cnpg_pg_stat_archiver_last_archived_time": "CloudNativePG default queries (pg_stat_archiver)",
    "redis_up": "redis_exporter (redis-ha chart exporter)",
    "kube_cronjob_status_last_successful_time": "kube-state-metrics",
}

RULE_NAMES = {rule["alert"]: metric_names(rule["expr"]) for rule in load_rules()}
DASHBOARD_NAMES = {q: metric_names(q) for q in dashboard_queries(load_dashboard())}


def ours(exported: dict[str, set[str]]) -> set[str]:
    return set().union(*exported.values())


def test_the_scrape_saw_every_process_and_its_own_metrics(exported: dict[str, set[str]]) -> None:
    """The live scrape is real: each process shows metrics only it exports."""
    assert "api_requests_total" in exported["api"]
    assert "fpindex_index_ready" in exported["index"]
    assert "worker_import_errors_total" in exported["worker"]
    assert "acoustid_submissions_pending" in exported["cron"]
    assert "acoustid_backup_last_success_timestamp_seconds" in exported["backup (textfile)"]
    assert "worker_imports_total" not in exported["api"]


@pytest.mark.parametrize("alert", sorted(RULE_NAMES))
def test_every_metric_the_alert_names_is_exported(
    alert: str, exported: dict[str, set[str]]
) -> None:
    missing = RULE_NAMES[alert] - ours(exported) - set(UPSTREAM)
    assert not missing, f"{alert} names metrics nobody exports: {sorted(missing)}"


@pytest.mark.parametrize("query", sorted(DASHBOARD_NAMES))
def test_every_metric_the_dashboard_query_names_is_exported(
    query: str, exported: dict[str, set[str]]
) -> None:
    missing = DASHBOARD_NAMES[query] - ours(exported) - set(UPSTREAM)
    assert not missing, f"{query} names metrics nobody exports: {sorted(missing)}"


def test_the_upstream_list_holds_only_what_we_use_and_do_not_export(
    exported: dict[str, set[str]],
) -> None:
    used = set().union(*RULE_NAMES.values(), *DASHBOARD_NAMES.values())
    assert set(UPSTREAM) <= used
    assert not set(UPSTREAM) & ours(exported)


@pytest.mark.skipif(
    not SHARED_CHARTS.is_dir(), reason=f"{SHARED_CHARTS} absent (only CI checkouts have it)"
)
def test_the_cnpg_metrics_are_in_the_pinned_operators_default_queries() -> None:
    """cnpg_<query>_<column> of the operator chart's default monitoring queries."""
    with tarfile.open(SHARED_CHARTS / "cloudnative-pg-0.29.0.tgz") as chart:
        member = chart.extractfile("cloudnative-pg/values.yaml")
        assert member is not None
        values = yaml.safe_load(member.read())
    queries = yaml.safe_load(values["monitoringQueriesConfigMap"]["queries"])
    defined = {
        f"cnpg_{query}_{column}"
        for query, spec in queries.items()
        for metric in spec["metrics"]
        for column, meta in metric.items()
        if meta["usage"] != "LABEL"
    }
    assert {name for name in UPSTREAM if name.startswith("cnpg_")} <= defined


@pytest.mark.skipif(
    not SHARED_CHARTS.is_dir(), reason=f"{SHARED_CHARTS} absent (only CI checkouts have it)"
)
def test_the_nats_charts_exporter_exports_consumer_state() -> None:
    """jetstream_consumer_* come from the exporter's -jsz=all (consumer details)."""
    with tarfile.open(SHARED_CHARTS / "nats-2.14.2.tgz") as chart:
        member = chart.extractfile("nats/files/stateful-set/prom-exporter-container.yaml")
        assert member is not None
        assert "- -jsz=all" in member.read().decode()
