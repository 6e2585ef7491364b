"""``Messaging``: NATS with JetStream from the official NATS chart — a cluster of the profile's
instances (3 in production), file-backed streams on PVCs sized from the table, monitoring port,
clients authenticated by user and password (the password from a Secret, never in a ConfigMap).

The ``SUBMISSIONS`` stream itself is created by the app at start (``ensure_stream``) with the
replicas the chart value ``nats.streamReplicas`` carries (R3 on three nodes), so stream settings
live in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from acoustid_stack.sizing import Profile, byte_quantity
from components.charts import NATS
from components.credentials import SecretRef, password_secret
from components.kube import disk_quantity, pod_shares, service_host

CLIENT_PORT = 4222
MONITOR_PORT = 8222
STORE_DIR = "/data"
# The app's NATS user ([nats] user); Ansible's nats_user is the same.
NATS_USER = "acoustid"
# Environment variable of the NATS container that holds the password (nats.conf reads it).
PASSWORD_ENV = "NATS_PASSWORD"  # noqa: S105 -- a variable name, not a secret


@dataclass(frozen=True)
class MessagingArgs:
    namespace: str
    profile: Profile
    release_name: str = "acoustid-nats"
    storage_class: str | None = None
    monitoring: bool = False
    password: pulumi.Input[str] | None = None

    @property
    def credentials(self) -> SecretRef:
        return SecretRef(self.release_name, "password")


def nats_values(args: MessagingArgs) -> dict[str, Any]:
    """Values of the NATS chart for ``args``' profile."""
    size = args.profile.component("nats")
    quorum = size.instances // 2 + 1
    jetstream = args.profile.derived.jetstream
    # Beside the server: the config reloader, and the exporter when monitoring is on.
    shares = pod_shares(size, helpers=2 if args.monitoring else 1)
    pvc: dict[str, Any] = {"enabled": True, "size": disk_quantity(size)}
    if args.storage_class:
        pvc["storageClassName"] = args.storage_class
    return {
        "fullnameOverride": args.release_name,
        "config": {
            "cluster": {"enabled": size.instances > 1, "replicas": size.instances},
            "jetstream": {
                "enabled": True,
                "fileStore": {
                    "enabled": True,
                    "dir": STORE_DIR,
                    "pvc": pvc,
                    "maxSize": byte_quantity(jetstream.max_file_store),
                },
                "memoryStore": {
                    "enabled": True,
                    "maxSize": byte_quantity(jetstream.max_memory_store),
                },
            },
            "monitor": {"enabled": True, "port": MONITOR_PORT},
            # The chart unquotes << >>: nats.conf gets `$NATS_PASSWORD`, resolved from the
            # container's environment at start, so the ConfigMap holds no password.
            "merge": {"authorization": {"user": NATS_USER, "password": f"<< ${PASSWORD_ENV} >>"}},
        },
        "service": {"ports": {"monitor": {"enabled": True}}},
        "container": {
            "resources": shares.server,
            "env": {
                PASSWORD_ENV: {
                    "valueFrom": {
                        "secretKeyRef": {
                            "name": args.credentials.name,
                            "key": args.credentials.key,
                        }
                    }
                }
            },
        },
        "reloader": {"merge": {"resources": shares.helper}},
        # One server per node: a node failure costs one JetStream replica, never the quorum.
        "podTemplate": {
            "topologySpreadConstraints": {
                "kubernetes.io/hostname": {"maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}
            }
        },
        "promExporter": {
            "enabled": args.monitoring,
            "merge": {"resources": shares.helper},
            "podMonitor": {"enabled": args.monitoring},
        },
        "natsBox": {"enabled": False},
        # The chart's PDB allows one pod down; keep a JetStream majority instead (one server
        # alone: none may go, draining its node needs a deliberate delete).
        "podDisruptionBudget": {"merge": {"spec": {"maxUnavailable": size.instances - quorum}}},
    }


class Messaging(pulumi.ComponentResource):
    """The NATS release and its password Secret. Outputs: ``servers`` (client URLs),
    ``monitor_url``, ``user`` and ``credentials``."""

    servers: pulumi.Output[list[str]]
    monitor_url: pulumi.Output[str]
    user: str
    credentials: SecretRef

    def __init__(
        self, name: str, args: MessagingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("acoustid:messaging:Messaging", name, None, opts)
        self.user = NATS_USER
        self.credentials = args.credentials
        credentials = password_secret(
            name,
            ref=args.credentials,
            namespace=args.namespace,
            given=args.password,
            parent=self,
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-nats",
            name=args.release_name,
            chart=NATS.chart,
            version=NATS.version,
            repository_opts=NATS.repository_opts(),
            namespace=args.namespace,
            values=nats_values(args),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[credentials]),
        )
        # The release name is the chart's fullname (fullnameOverride), hence the Service name.
        host = self.release.name.apply(lambda _: service_host(args.release_name, args.namespace))
        self.servers = host.apply(lambda h: [f"nats://{h}:{CLIENT_PORT}"])
        self.monitor_url = host.apply(lambda h: f"http://{h}:{MONITOR_PORT}")
        self.register_outputs(
            {
                "servers": self.servers,
                "monitor_url": self.monitor_url,
                "credentials_secret": self.credentials.name,
            }
        )
