"""Database: the CNPG Cluster, its backups and recovery, against the sizing table and the CRDs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from crd_schemas import crd_errors, crd_schemas
from pulumi_harness import (
    BACKUP,
    CNPG_CLUSTER,
    CNPG_SCHEDULED_BACKUP,
    CRD_DIR,
    OBJECT_STORE,
    POD_MONITOR,
    RELEASE,
    Deployment,
    stack_args,
)

from acoustid_stack.sizing import byte_quantity, load_sizing
from components.database import RecoveryArgs
from components.kube import pod_shares
from components.operators import ClusterOperatorsArgs
from components.stack import AcoustidStackArgs

pytestmark = pytest.mark.deploy

Deploy = Callable[[AcoustidStackArgs], Deployment]


def cluster_spec(deployment: Deployment) -> dict[str, Any]:
    spec: dict[str, Any] = deployment.one(CNPG_CLUSTER).inputs["spec"]
    return spec


def test_production_cluster_is_a_primary_and_two_replicas_on_separate_nodes(
    production: Deployment,
) -> None:
    spec = cluster_spec(production)
    assert spec["instances"] == 3
    assert spec["affinity"]["enablePodAntiAffinity"] is True
    assert spec["affinity"]["podAntiAffinityType"] == "required"
    assert spec["affinity"]["topologyKey"] == "kubernetes.io/hostname"


def test_minimum_cluster_has_one_instance_and_reads_from_the_primary(minimum: Deployment) -> None:
    assert cluster_spec(minimum)["instances"] == 1
    # The -ro Service would have no endpoints without replicas.
    assert minimum.outputs["database_ro_host"] == minimum.outputs["database_rw_host"]


def test_production_reads_go_to_the_replica_service(production: Deployment) -> None:
    assert production.outputs["database_rw_host"] == "acoustid-db-rw.acoustid.svc"
    assert production.outputs["database_ro_host"] == "acoustid-db-ro.acoustid.svc"


def test_cluster_storage_resources_and_parameters_come_from_the_sizing_table(
    deployment: Deployment,
) -> None:
    profile = load_sizing().profile(deployment.outputs["sizing_profile"])
    size = profile.component("postgresql")
    spec = cluster_spec(deployment)
    assert spec["storage"]["size"] == byte_quantity(size.disk)
    assert spec["postgresql"]["parameters"] == profile.derived.postgresql.parameters()
    # PostgreSQL and the plugin's sidecar share the instance's machine budget, both Guaranteed.
    shares = pod_shares(size, helpers=1)
    assert spec["resources"] == shares.server
    (store,) = deployment.of_type(OBJECT_STORE)
    assert store.inputs["spec"]["instanceSidecarConfiguration"]["resources"] == shares.helper
    for resources in (shares.server, shares.helper):
        assert resources["requests"] == resources["limits"]


def test_without_backup_postgresql_gets_the_whole_budget(deploy: Deploy) -> None:
    size = load_sizing().profile("minimum").component("postgresql")
    spec = cluster_spec(deploy(stack_args("minimum", backup=None)))
    assert spec["resources"]["requests"] == spec["resources"]["limits"]
    assert spec["resources"]["requests"]["memory"] == byte_quantity(size.memory)


def test_initdb_creates_the_three_databases_with_contrib_extensions(
    production: Deployment,
) -> None:
    initdb = cluster_spec(production)["bootstrap"]["initdb"]
    assert initdb["database"] == "acoustid_app"
    assert initdb["owner"] == "acoustid"
    assert initdb["secret"] == {"name": "acoustid-db-app"}
    assert initdb["postInitTemplateSQL"] == [
        "CREATE EXTENSION IF NOT EXISTS pgcrypto",
        "CREATE EXTENSION IF NOT EXISTS intarray",
    ]
    assert initdb["postInitApplicationSQL"] == [
        "CREATE DATABASE acoustid_fingerprint OWNER acoustid",
        "CREATE DATABASE acoustid_ingest OWNER acoustid",
    ]


def test_wal_is_archived_through_the_barman_cloud_plugin_with_a_retention_policy(
    deployment: Deployment,
) -> None:
    (plugin,) = cluster_spec(deployment)["plugins"]
    assert plugin == {
        "name": "barman-cloud.cloudnative-pg.io",
        "isWALArchiver": True,
        "parameters": {"barmanObjectName": "acoustid-db-backups", "serverName": "acoustid-db"},
    }
    # The deprecated in-tree barmanObjectStore is gone.
    assert "backup" not in cluster_spec(deployment)
    (store,) = deployment.of_type(OBJECT_STORE)
    assert store.inputs["metadata"]["name"] == "acoustid-db-backups"
    spec = store.inputs["spec"]
    assert spec["configuration"]["destinationPath"] == "s3://acoustid-backups/test"
    assert spec["configuration"]["endpointURL"] == "https://objects.example.org"
    assert spec["configuration"]["s3Credentials"]["accessKeyId"] == {
        "name": "acoustid-db-backup",
        "key": "ACCESS_KEY_ID",
    }
    assert spec["retentionPolicy"] == "30d"
    assert deployment.outputs["backup_location"] == "s3://acoustid-backups/test/acoustid-db"


def test_a_plugin_base_backup_is_scheduled_daily_and_taken_at_once(
    deployment: Deployment,
) -> None:
    spec = deployment.one(CNPG_SCHEDULED_BACKUP).inputs["spec"]
    assert spec["cluster"] == {"name": "acoustid-db"}
    assert spec["method"] == "plugin"
    assert spec["pluginConfiguration"] == {"name": "barman-cloud.cloudnative-pg.io"}
    assert spec["immediate"] is True
    seconds, minute, hour, day, month, weekday = spec["schedule"].split()
    assert (day, month, weekday) == ("*", "*", "*")
    assert all(field.isdigit() for field in (seconds, minute, hour))


def test_without_backup_there_is_no_archive_and_no_scheduled_backup(deploy: Deploy) -> None:
    deployment = deploy(stack_args("minimum", backup=None))
    assert "plugins" not in cluster_spec(deployment)
    assert deployment.of_type(CNPG_SCHEDULED_BACKUP) == []
    assert deployment.of_type(OBJECT_STORE) == []
    assert deployment.outputs["backup_location"] == ""


def test_recovery_bootstraps_from_the_plugin_at_the_target_time(deploy: Deploy) -> None:
    backup = stack_args("production").backup
    assert backup is not None
    recovery = RecoveryArgs(source_server_name="acoustid-db", target_time="2026-10-01T12:00:00Z")
    deployment = deploy(
        stack_args(
            "production",
            recovery=recovery,
            backup=replace(backup, server_name="acoustid-db-2"),
        )
    )
    spec = cluster_spec(deployment)
    assert "initdb" not in spec["bootstrap"]
    assert spec["bootstrap"]["recovery"]["source"] == "origin"
    assert spec["bootstrap"]["recovery"]["recoveryTarget"] == {"targetTime": "2026-10-01T12:00:00Z"}
    (source,) = spec["externalClusters"]
    assert source == {
        "name": "origin",
        "plugin": {
            "name": "barman-cloud.cloudnative-pg.io",
            "parameters": {"barmanObjectName": "acoustid-db-backups", "serverName": "acoustid-db"},
        },
    }
    # The restored cluster archives to a fresh folder of the same store, never over its source.
    assert spec["plugins"][0]["parameters"] == {
        "barmanObjectName": "acoustid-db-backups",
        "serverName": "acoustid-db-2",
    }


def test_recovery_from_another_location_gets_its_own_object_store(deploy: Deploy) -> None:
    recovery = RecoveryArgs(
        source_server_name="acoustid-db",
        target_time="2026-10-01T12:00:00Z",
        destination_path="s3://old-bucket/acoustid",
    )
    deployment = deploy(
        stack_args("minimum", recovery=recovery, backup=replace(BACKUP, server_name="new"))
    )
    stores = {
        store.inputs["metadata"]["name"]: store.inputs["spec"]["configuration"]["destinationPath"]
        for store in deployment.of_type(OBJECT_STORE)
    }
    assert stores == {
        "acoustid-db-backups": "s3://acoustid-backups/test",
        "acoustid-db-origin": "s3://old-bucket/acoustid",
    }
    (source,) = cluster_spec(deployment)["externalClusters"]
    assert source["plugin"]["parameters"]["barmanObjectName"] == "acoustid-db-origin"


def test_recovery_into_the_source_folder_is_refused(deploy: Deploy) -> None:
    recovery = RecoveryArgs(source_server_name="acoustid-db", target_time="2026-10-01T12:00:00Z")
    with pytest.raises(ValueError, match="give backup a new serverName"):
        deploy(stack_args("production", recovery=recovery))


def test_recovery_target_without_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        RecoveryArgs(source_server_name="acoustid-db", target_time="2026-10-01 12:00:00")


def test_operators_are_installed_in_order_and_each_is_optional(
    deploy: Deploy, production: Deployment
) -> None:
    releases = {r.inputs["chart"]: r for r in production.of_type(RELEASE)}
    assert releases["cloudnative-pg"].inputs["namespace"] == "cnpg-system"
    # The plugin must run in the operator's namespace and needs cert-manager's certificates.
    assert releases["plugin-barman-cloud"].inputs["namespace"] == "cnpg-system"
    assert releases["cert-manager"].inputs["namespace"] == "cert-manager"
    assert releases["cert-manager"].values == {"crds": {"enabled": True}}
    for chart in ("cloudnative-pg", "plugin-barman-cloud", "cert-manager"):
        assert releases[chart].parent_type == "acoustid:operators:ClusterOperators"
    none = ClusterOperatorsArgs(cert_manager=False, cnpg_operator=False, barman_cloud_plugin=False)
    without = deploy(stack_args("production", operators=none))
    charts = {release.inputs["chart"] for release in without.of_type(RELEASE)}
    assert charts.isdisjoint({"cloudnative-pg", "plugin-barman-cloud", "cert-manager"})
    only_cnpg = deploy(stack_args("production", operators=replace(none, cnpg_operator=True)))
    assert {r.inputs["chart"] for r in only_cnpg.of_type(RELEASE)} >= {"cloudnative-pg"}
    assert "cert-manager" not in {r.inputs["chart"] for r in only_cnpg.of_type(RELEASE)}


def test_pod_monitor_only_when_monitoring_is_on(deploy: Deploy, production: Deployment) -> None:
    assert production.of_type(POD_MONITOR) == []
    monitored = deploy(stack_args("production", monitoring=True))
    spec = monitored.one(POD_MONITOR).inputs["spec"]
    assert spec["selector"] == {"matchLabels": {"cnpg.io/cluster": "acoustid-db"}}


# --------------------------------------------------------------------------- CRD schemas


@pytest.mark.parametrize(
    "resource_type", [CNPG_CLUSTER, CNPG_SCHEDULED_BACKUP, OBJECT_STORE, POD_MONITOR]
)
def test_custom_resources_match_their_crd_schemas(deploy: Deploy, resource_type: str) -> None:
    if not CRD_DIR.is_dir():
        pytest.skip(f"CRD schemas not found at {CRD_DIR} (only CI and developers have them)")
    pytest.importorskip("jsonschema")
    recovery = RecoveryArgs(source_server_name="old-db", target_time="2026-10-01T12:00:00+00:00")
    for args in (
        stack_args("production", monitoring=True),
        stack_args("minimum", monitoring=True, recovery=recovery),
    ):
        for resource in deploy(args).of_type(resource_type):
            manifest = resource.manifest()
            assert crd_errors(manifest) == [], f"{resource.name} would be rejected or pruned"


def test_the_crd_check_reports_a_field_the_api_server_would_prune() -> None:
    if not CRD_DIR.is_dir():
        pytest.skip(f"CRD schemas not found at {CRD_DIR} (only CI and developers have them)")
    pytest.importorskip("jsonschema")
    manifest = {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "ScheduledBackup",
        "metadata": {"name": "x"},
        "spec": {"schedule": "0 0 3 * * *", "cluster": {"name": "db"}, "immediatly": True},
    }
    assert crd_errors(manifest) == ["spec.immediatly: not in the schema (pruned)"]


def test_postgresql_keeps_the_operators_disruption_budgets(deployment: Deployment) -> None:
    """CloudNativePG creates the Cluster's PDBs itself (primary: minAvailable 1; replicas: all
    but one), which keeps a primary and a replica of three up; the spec must not turn them off."""
    if not CRD_DIR.is_dir():
        pytest.skip(f"CRD schemas not found at {CRD_DIR} (only CI and developers have them)")
    schema = crd_schemas()[("postgresql.cnpg.io/v1", "Cluster")]
    assert schema["properties"]["spec"]["properties"]["enablePDB"]["default"] is True
    assert cluster_spec(deployment).get("enablePDB", True) is True
