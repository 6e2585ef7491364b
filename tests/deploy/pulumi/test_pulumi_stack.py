"""The whole program: parents, secrets, stack configuration and exports."""

from __future__ import annotations

import json
import runpy
from typing import Any

import pulumi
import pytest
import yaml
from pulumi_harness import (
    CNPG_CLUSTER,
    GENERATED_PREFIX,
    INFRA,
    PROJECT,
    RANDOM_PASSWORD,
    RELEASE,
    REPO,
    SECRET,
    Deployment,
    plain_strings,
    run_program,
)

from stack_config import load_stack_args

pytestmark = pytest.mark.deploy

BASE_CONFIG = {
    "profile": "production",
    "backup": {"destinationPath": "s3://acoustid-backups/prod"},
    "backupAccessKeyId": "config-access-key-id",
    "backupSecretAccessKey": "config-secret-access-key",
}
SECRET_KEYS = (
    "backupAccessKeyId",
    "backupSecretAccessKey",
    "databasePassword",
    "natsPassword",
    "sentryDsn",
)


def pulumi_config(values: dict[str, Any]) -> dict[str, str]:
    """Stack config as the CLI hands it to a program: namespaced keys, objects as JSON."""
    return {
        f"{PROJECT}:{key}": value if isinstance(value, str) else json.dumps(value)
        for key, value in values.items()
    }


def run_main(values: dict[str, Any]) -> Deployment:
    """Run infra/__main__.py as `pulumi up` would, with ``values`` as the stack config."""

    def program() -> dict[str, Any]:
        runpy.run_path(str(INFRA / "__main__.py"))
        root = pulumi.runtime.get_root_resource()
        assert root is not None
        outputs: dict[str, Any] = root.outputs  # type: ignore[attr-defined]
        return outputs

    secret_keys = [f"{PROJECT}:{key}" for key in SECRET_KEYS]
    return run_program(program, config=pulumi_config(values), secret_keys=secret_keys)


def config_error(values: dict[str, Any]) -> str:
    with pytest.raises(pulumi.RunError) as raised:
        run_program(
            lambda: {"args": load_stack_args(pulumi.Config())}, config=pulumi_config(values)
        )
    return str(raised.value)


def test_every_resource_has_a_component_parent(deployment: Deployment) -> None:
    for resource in deployment.resources:
        if resource.type == "acoustid:stack:AcoustidStack":
            assert resource.parent_type == "pulumi:pulumi:Stack"
        else:
            assert resource.parent_type is not None, f"{resource.name} has no parent"
            assert resource.parent_type.startswith("acoustid:"), (
                f"{resource.name} is parented to {resource.parent_type}, not a component"
            )


def test_components_have_the_acoustid_type_tokens(production: Deployment) -> None:
    types = {r.type for r in production.resources if r.type.startswith("acoustid:")}
    assert types == {
        "acoustid:stack:AcoustidStack",
        "acoustid:database:Database",
        "acoustid:messaging:Messaging",
        "acoustid:cache:Cache",
        "acoustid:app:AcoustidApp",
        "acoustid:operators:ClusterOperators",
    }


def test_generated_passwords_are_secret_and_absent_from_outputs(deployment: Deployment) -> None:
    # database, redis, nats, website
    assert len(deployment.of_type(RANDOM_PASSWORD)) == 4
    secrets = deployment.of_type(SECRET)
    assert secrets
    for secret in secrets:
        string_data = secret.raw_inputs["stringData"]
        assert not list(plain_strings(string_data)), f"{secret.name} holds plain values"
    for resource in deployment.resources:
        if resource.type in (RANDOM_PASSWORD, SECRET):
            continue
        leaked = [s for s in plain_strings(resource.raw_inputs) if GENERATED_PREFIX in s]
        assert leaked == [], f"{resource.name} carries a password in plain text"
    exported = json.dumps(deployment.outputs)
    assert GENERATED_PREFIX not in exported
    assert "test-secret-access-key" not in exported
    assert deployment.secret_outputs == set()


def test_program_exports_urls_and_service_names_from_stack_config() -> None:
    deployment = run_main(
        {**BASE_CONFIG, "databasePassword": "from-config", "natsPassword": "nats-from-config"}
    )
    outputs = deployment.outputs
    assert outputs["api_url"] == "http://acoustid-api.acoustid.svc:5000"
    assert outputs["database_rw_host"] == "acoustid-db-rw.acoustid.svc"
    assert outputs["backup_location"] == "s3://acoustid-backups/prod/acoustid-db"
    assert len(outputs["redis_sentinels"]) == 3
    assert outputs["nats_credentials_secret"] == "acoustid-nats"
    # A password given as secret config replaces the generated one and stays secret.
    assert len(deployment.of_type(RANDOM_PASSWORD)) == 2
    (nats_secret,) = [
        s for s in deployment.of_type(SECRET) if s.inputs["metadata"]["name"] == "acoustid-nats"
    ]
    assert nats_secret.inputs["stringData"] == {"password": "nats-from-config"}
    assert not list(plain_strings(nats_secret.raw_inputs["stringData"]))
    exported = json.dumps(outputs)
    for value in ("from-config", "config-secret-access-key", "config-access-key-id"):
        assert value not in exported


def test_missing_profile_names_the_key() -> None:
    config = {key: value for key, value in BASE_CONFIG.items() if key != "profile"}
    assert "acoustid-stack:profile" in config_error(config)


def test_unknown_profile_names_the_key_and_the_known_profiles() -> None:
    message = config_error({**BASE_CONFIG, "profile": "huge"})
    assert message.startswith("acoustid-stack:profile: unknown sizing profile 'huge'")
    assert "minimum, production" in message


def test_missing_backup_names_the_key_and_the_way_out() -> None:
    config = {key: value for key, value in BASE_CONFIG.items() if key != "backup"}
    message = config_error(config)
    assert message.startswith("acoustid-stack:backup is missing")
    assert "backup.enabled: false" in message


def test_missing_backup_credentials_name_the_key() -> None:
    config = {k: v for k, v in BASE_CONFIG.items() if k != "backupSecretAccessKey"}
    assert "acoustid-stack:backupSecretAccessKey" in config_error(config)


def test_misspelled_backup_field_names_the_field() -> None:
    message = config_error({**BASE_CONFIG, "backup": {"destinationPth": "s3://x"}})
    assert message.startswith("acoustid-stack:backup.destinationPth:")


def test_recovery_target_without_time_zone_names_the_key() -> None:
    recovery = {"sourceServerName": "old-db", "targetTime": "2026-10-01 12:00"}
    message = config_error({**BASE_CONFIG, "recovery": recovery})
    assert message.startswith("acoustid-stack:recovery.targetTime:")


def test_recovery_into_the_archive_it_reads_names_the_key() -> None:
    recovery = {"sourceServerName": "acoustid-db", "targetTime": "2026-10-01T12:00:00+00:00"}
    message = config_error({**BASE_CONFIG, "recovery": recovery})
    assert message.startswith("acoustid-stack:recovery:")
    assert "serverName" in message


def test_cluster_wide_parts_can_be_left_to_the_cluster() -> None:
    deployment = run_main(
        {
            **BASE_CONFIG,
            "installCertManager": "false",
            "installBarmanCloudPlugin": "false",
        }
    )
    charts = {release.inputs["chart"] for release in deployment.of_type(RELEASE)}
    assert "cloudnative-pg" in charts
    assert charts.isdisjoint({"cert-manager", "plugin-barman-cloud"})


def test_backup_can_be_switched_off_explicitly() -> None:
    deployment = run_main({"profile": "minimum", "backup": {"enabled": False}})
    assert deployment.outputs["backup_location"] == ""


@pytest.mark.parametrize("stack", ["minimum", "production"])
def test_example_stack_files_deploy_their_profile(stack: str) -> None:
    stack_file = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())
    values = {key.removeprefix(f"{PROJECT}:"): value for key, value in stack_file["config"].items()}
    secrets = {key: BASE_CONFIG[key] for key in ("backupAccessKeyId", "backupSecretAccessKey")}
    deployment = run_main({**values, **secrets})
    assert deployment.outputs["sizing_profile"] == stack
    assert deployment.outputs["backup_location"].startswith("s3://acoustid-backups/")


def test_the_app_waits_for_a_ready_database_and_the_nats_and_redis_releases(
    production: Deployment,
) -> None:
    """The app chart's pre-install migration Job must not start before PostgreSQL accepts
    connections: Pulumi waits for the Cluster's Ready condition, and the release waits for it
    and for the NATS and Redis releases (which Helm installs with --wait)."""
    cluster = production.one(CNPG_CLUSTER)
    assert cluster.inputs["metadata"]["annotations"] == {"pulumi.com/waitFor": "condition=Ready"}
    app = production.release("acoustid-stack")
    for waited in (cluster, production.release("nats"), production.release("redis-ha")):
        assert waited.urn in app.dependencies, f"the app release does not wait for {waited.name}"
        assert waited.inputs.get("skipAwait") in (None, False)
    plugin = production.release("plugin-barman-cloud")
    assert plugin.urn in cluster.dependencies
    assert production.release("cert-manager").urn in plugin.dependencies
    assert production.release("cloudnative-pg").urn in plugin.dependencies


def test_sentry_dsn_from_secret_config_reaches_the_chart_as_a_secret_file() -> None:
    dsn = "https://dsn-from-config@sentry.example.org/3"
    deployment = run_main({**BASE_CONFIG, "sentryDsn": dsn, "sentryEnvironment": "prod"})
    (sentry_secret,) = [
        s for s in deployment.of_type(SECRET) if s.inputs["metadata"]["name"] == "acoustid-sentry"
    ]
    assert sentry_secret.inputs["stringData"] == {"dsn": dsn}
    assert not list(plain_strings(sentry_secret.raw_inputs["stringData"]))
    release = deployment.release("acoustid-stack")
    assert release.values["sentry"] == {
        "existingSecret": "acoustid-sentry",
        "existingSecretKey": "dsn",
        "environment": "prod",
    }
    assert sentry_secret.urn in release.dependencies
    assert deployment.outputs["sentry_secret"] == "acoustid-sentry"
    for resource in deployment.resources:
        if resource is not sentry_secret:
            assert dsn not in json.dumps(resource.inputs), f"{resource.name} carries the DSN"
    assert dsn not in json.dumps(deployment.outputs)
    helm_python = pytest.importorskip("helm_python", reason="needs the deploy extra")
    with helm_python.Chart.load(REPO / "charts" / "acoustid-stack") as chart:
        manifests = chart.render(release.values, name="acoustid", namespace="acoustid")
    api = yaml.safe_load(next(t for p, t in manifests.items() if p.endswith("api/deployment.yaml")))
    (container,) = api["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["ACOUSTID_SENTRY_DSN_FILE"] == "/etc/acoustid/secrets/sentry-dsn"


def test_without_a_sentry_dsn_no_sentry_secret_nor_value() -> None:
    deployment = run_main(BASE_CONFIG)
    assert "sentry" not in deployment.release("acoustid-stack").values
    assert deployment.outputs["sentry_secret"] == ""
