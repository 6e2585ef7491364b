"""``Cache``: Redis with Sentinel failover from the ``redis-ha`` chart — one Redis server and one
Sentinel per pod, the profile's instances (3 in production) on separate nodes, RDB snapshots +
AOF fsynced every second on a PVC, password from a Secret.

Why redis-ha (DandyDeveloper/charts) and not Bitnami or an operator: it runs the official
``redis`` image (Bitnami's free images stopped receiving versioned updates in 2025), it is the
chart Argo CD's HA install ships, it needs no CRDs or operator to keep alive, and its pods
announce themselves through one Service each, which is what Sentinel clients such as ours
(``[redis] sentinels``) need. The app talks to the Sentinels and follows the master; HAProxy is
not needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from acoustid_stack.sizing import Profile
from components.charts import REDIS_HA
from components.credentials import SecretRef, password_secret
from components.kube import disk_quantity, pod_shares, service_host

REDIS_PORT = 6379
SENTINEL_PORT = 26379


@dataclass(frozen=True)
class CacheArgs:
    namespace: str
    profile: Profile
    sentinel_master: str
    release_name: str = "acoustid-redis"
    storage_class: str | None = None
    monitoring: bool = False
    password: pulumi.Input[str] | None = None

    @property
    def credentials(self) -> SecretRef:
        return SecretRef(self.release_name, "password")


def redis_values(args: CacheArgs) -> dict[str, Any]:
    """Values of the redis-ha chart for ``args``' profile."""
    size = args.profile.component("redis")
    replicated = size.instances > 1
    quorum = size.instances // 2 + 1
    # Beside Redis: its Sentinel, the split-brain check, and the exporter when monitoring is on.
    shares = pod_shares(size, helpers=3 if args.monitoring else 2)
    volume: dict[str, Any] = {"enabled": True, "size": disk_quantity(size)}
    if args.storage_class:
        volume["storageClass"] = args.storage_class
    return {
        "fullnameOverride": args.release_name,
        "replicas": size.instances,
        "auth": True,
        "existingSecret": args.credentials.name,
        "authKey": args.credentials.key,
        "redis": {
            "port": REDIS_PORT,
            "masterGroupName": args.sentinel_master,
            "config": {
                **args.profile.derived.redis.directives(),
                # RDB for compact restores, AOF so that a crash loses at most one second.
                "save": "900 1 300 10 60 10000",
                "appendonly": "yes",
                "appendfsync": "everysec",
                # A master cut off from every replica stops taking writes instead of diverging.
                "min-replicas-to-write": 1 if replicated else 0,
            },
            "resources": shares.server,
        },
        "sentinel": {"port": SENTINEL_PORT, "quorum": quorum, "resources": shares.helper},
        "splitBrainDetection": {"resources": shares.helper},
        "init": {"resources": shares.helper},
        # Voluntary disruptions (drains, upgrades) never take more than a Sentinel minority:
        # with one instance that means none, so draining its node needs a deliberate delete.
        "podDisruptionBudget": {"minAvailable": quorum},
        "persistentVolume": volume,
        "hardAntiAffinity": replicated,
        "haproxy": {"enabled": False},
        "exporter": {
            "enabled": args.monitoring,
            "resources": shares.helper,
            "serviceMonitor": {"enabled": args.monitoring},
        },
    }


class Cache(pulumi.ComponentResource):
    """The Redis release and its password Secret. Outputs: ``sentinels`` (``host:port`` of every
    Sentinel), ``sentinel_master`` (the name they watch) and ``credentials``."""

    sentinels: pulumi.Output[list[str]]
    sentinel_master: str
    credentials: SecretRef

    def __init__(
        self, name: str, args: CacheArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("acoustid:cache:Cache", name, None, opts)
        self.credentials = args.credentials
        self.sentinel_master = args.sentinel_master
        credentials = password_secret(
            name,
            ref=args.credentials,
            namespace=args.namespace,
            given=args.password,
            parent=self,
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-redis",
            name=args.release_name,
            chart=REDIS_HA.chart,
            version=REDIS_HA.version,
            repository_opts=REDIS_HA.repository_opts(),
            namespace=args.namespace,
            values=redis_values(args),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[credentials]),
        )
        instances = args.profile.component("redis").instances
        # redis-ha gives every pod an "announce" Service with a stable address.
        announce = [f"{args.release_name}-announce-{i}" for i in range(instances)]
        self.sentinels = self.release.name.apply(
            lambda _: [f"{service_host(a, args.namespace)}:{SENTINEL_PORT}" for a in announce]
        )
        self.register_outputs(
            {
                "sentinels": self.sentinels,
                "credentials_secret": self.credentials.name,
            }
        )
