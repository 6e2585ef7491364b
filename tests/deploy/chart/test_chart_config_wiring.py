"""The rendered acoustid.conf plus the pod's env and mounted secrets load with the app's own
config loader, exactly as a pod would (files placed under a temporary root)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from acoustid_stack.config import load_settings

from .conftest import RELEASE, Rendered

pytestmark = pytest.mark.deploy

SENTRY_DSN = "https://secret-from-sentry-dsn@sentry.example.org/7"


def pod_settings(rendered: Rendered, deployment: str, root: Path) -> Any:
    """Settings as the api pod would load them: its env, its ConfigMap, its secret files."""
    spec = rendered.named("Deployment", deployment)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    config_map = rendered.named("ConfigMap", f"{RELEASE}-acoustid-stack")
    environ: dict[str, str] = {}
    for variable in container["env"]:
        path = Path(variable["value"])
        local = root / path.relative_to("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        if variable["name"] == "ACOUSTID_CONFIG":
            local.write_text(config_map["data"]["acoustid.conf"])
        elif path.name == "sentry-dsn":  # a DSN must be a URL
            local.write_text(SENTRY_DSN + "\n")
        else:
            local.write_text(f"secret-from-{path.name}\n")
        environ[variable["name"]] = str(local)
    return load_settings(environ=environ)


def test_api_pod_settings_load_with_every_connection_setting(
    rendered_sets: dict[str, Rendered], tmp_path: Path
) -> None:
    settings = pod_settings(rendered_sets["production"], f"{RELEASE}-acoustid-stack-api", tmp_path)
    assert settings.database.get("fingerprint").host == "acoustid-db-rw"
    assert settings.database.get("ingest").password == "secret-from-database-password"
    assert settings.database.get("app").name == "acoustid_app"
    assert settings.redis.password == "secret-from-redis-password"
    assert settings.website.secret == "secret-from-website-secret"
    assert settings.nats.servers == ["nats://acoustid-nats:4222"]
    assert settings.nats.replicas == 3
    assert len(settings.index.shards) == 4
    assert (settings.api.host, settings.api.port, settings.api.workers) == ("0.0.0.0", 5000, 4)


def test_everything_on_settings_load_with_replicas_sentinels_and_extra_keys(
    rendered_sets: dict[str, Rendered], tmp_path: Path
) -> None:
    settings = pod_settings(
        rendered_sets["production-everything-on"], f"{RELEASE}-acoustid-stack-worker", tmp_path
    )
    assert settings.database.get("app", readonly=True).host == "acoustid-db-ro"
    assert settings.database.get("app", readonly=True).password == "secret-from-database-password"
    assert settings.redis.sentinels[0] == ("redis-sentinel-0.redis-sentinel", 26379)
    assert settings.rate_limit.ip_rate == 10
    assert (settings.nats.user, settings.nats.password) == ("acoustid", "secret-from-nats-password")
    assert settings.website.base_url == "https://acoustid.example.org/"
    assert settings.sentry.dsn == SENTRY_DSN
    assert (settings.sentry.environment, settings.sentry.traces_sample_rate) == ("production", 0.05)


def test_the_website_links_to_the_api_docs_on_the_ingress_host(
    rendered_sets: dict[str, Rendered], tmp_path: Path
) -> None:
    web = f"{RELEASE}-acoustid-stack-web"
    exposed = pod_settings(rendered_sets["production-everything-on"], web, tmp_path / "on")
    internal = pod_settings(rendered_sets["production"], web, tmp_path / "off")

    assert exposed.web.api_url == "https://acoustid.example.org"
    assert internal.web.api_url is None  # no public address known: the app's default
