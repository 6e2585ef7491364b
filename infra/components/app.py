"""``AcoustidApp``: our chart (``charts/acoustid-stack``) as a Helm release. Its values are the
sizing table's (``sizing.helm_values``, the same the generated ``values-<profile>.yaml`` hold)
plus where PostgreSQL, Redis and NATS are and which Secrets hold their passwords (and the Sentry
DSN)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from acoustid_stack.sizing import Profile, helm_values
from components.credentials import SecretRef
from components.kube import deep_merge, service_host

CHART_DIR = Path(__file__).resolve().parents[2] / "charts" / "acoustid-stack"


def chart_defaults() -> dict[str, Any]:
    """The chart's values.yaml: defaults we do not override (ports) are read, not repeated."""
    defaults: dict[str, Any] = yaml.safe_load((CHART_DIR / "values.yaml").read_text("utf-8"))
    return defaults


@dataclass(frozen=True)
class DatabaseConnection:
    rw_host: pulumi.Input[str]
    ro_host: pulumi.Input[str]
    port: int
    user: str
    credentials: SecretRef


@dataclass(frozen=True)
class CacheConnection:
    sentinels: pulumi.Input[list[str]]
    sentinel_master: str
    credentials: SecretRef


@dataclass(frozen=True)
class MessagingConnection:
    servers: pulumi.Input[list[str]]
    user: str
    credentials: SecretRef


@dataclass(frozen=True)
class IngressArgs:
    host: str
    class_name: str | None = None
    tls_secret: str | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls_secret else 'http'}://{self.host}"


@dataclass(frozen=True)
class AcoustidAppArgs:
    namespace: str
    profile: Profile
    database: DatabaseConnection
    cache: CacheConnection
    messaging: MessagingConnection
    website_secret: SecretRef
    #: the Secret holding the Sentry DSN; None: no error reporting
    sentry: SecretRef | None = None
    sentry_environment: str | None = None
    release_name: str = "acoustid"
    image_tag: str | None = None
    index_image_tag: str | None = None
    index_storage_class: str | None = None
    ingress: IngressArgs | None = None
    monitoring: bool = False
    depends_on: list[pulumi.Resource] = field(default_factory=list)


def app_values(args: AcoustidAppArgs) -> dict[str, Any]:
    """The release's values: sizing first, then connections and stack choices on top."""
    database, cache = args.database, args.cache
    connections: dict[str, Any] = {
        "fullnameOverride": args.release_name,
        "database": {
            "host": database.rw_host,
            "readOnlyHost": database.ro_host,
            "port": database.port,
            "user": database.user,
            "auth": _existing_secret(database.credentials),
        },
        "redis": {
            "sentinels": cache.sentinels,
            "sentinelMaster": cache.sentinel_master,
            "auth": _existing_secret(cache.credentials),
        },
        "nats": {
            "servers": args.messaging.servers,
            "user": args.messaging.user,
            "auth": _existing_secret(args.messaging.credentials),
        },
        "website": {"auth": _existing_secret(args.website_secret)},
        "serviceMonitor": {"enabled": args.monitoring},
        "monitoring": {
            "prometheusRule": {"enabled": args.monitoring},
            "dashboards": {"enabled": args.monitoring},
        },
    }
    if args.sentry is not None:
        connections["sentry"] = _existing_secret(args.sentry)
        if args.sentry_environment:
            connections["sentry"]["environment"] = args.sentry_environment
    if args.image_tag:
        connections["image"] = {"tag": args.image_tag}
    index: dict[str, Any] = {}
    if args.index_image_tag:
        index["image"] = {"tag": args.index_image_tag}
    if args.index_storage_class:
        index["persistence"] = {"storageClass": args.index_storage_class}
    if index:
        connections["index"] = index
    if args.ingress is not None:
        ingress: dict[str, Any] = {"enabled": True, "host": args.ingress.host}
        if args.ingress.class_name:
            ingress["className"] = args.ingress.class_name
        if args.ingress.tls_secret:
            ingress["tlsSecret"] = args.ingress.tls_secret
        connections["ingress"] = ingress
        connections["config"] = {"baseUrl": f"{args.ingress.url}/"}
    return deep_merge(helm_values(args.profile), connections)


def _existing_secret(ref: SecretRef) -> dict[str, str]:
    return {"existingSecret": ref.name, "existingSecretKey": ref.key}


class AcoustidApp(pulumi.ComponentResource):
    """The chart release. Output: ``api_url`` (the ingress URL, else the in-cluster Service)."""

    api_url: pulumi.Output[str]

    def __init__(
        self, name: str, args: AcoustidAppArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("acoustid:app:AcoustidApp", name, None, opts)
        self.release = k8s.helm.v3.Release(
            f"{name}-chart",
            name=args.release_name,
            chart=str(CHART_DIR),
            namespace=args.namespace,
            values=app_values(args),
            # The migration Job is a pre-install hook: wait for it, and for the pods after it.
            wait_for_jobs=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.depends_on),
        )
        api_port = chart_defaults()["api"]["service"]["port"]
        in_cluster = f"http://{service_host(f'{args.release_name}-api', args.namespace)}:{api_port}"
        url = args.ingress.url if args.ingress is not None else in_cluster
        self.api_url = self.release.name.apply(lambda _: url)
        self.register_outputs({"api_url": self.api_url})
