"""``Database``: PostgreSQL on CloudNativePG — primary + streaming replicas, WAL archiving and
base backups to object storage through the Barman Cloud plugin (an ``ObjectStore`` per
location, the Cluster's ``plugins`` entry, a daily plugin ``ScheduledBackup``), and a
point-in-time recovery switch that bootstraps from the plugin (DESIGN.md §8)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from acoustid_stack.config.table import DATABASES
from acoustid_stack.sizing import Profile
from components.appconfig import app_default
from components.credentials import SecretRef, password, secret
from components.kube import disk_quantity, machine_resources, pod_shares, service_host

CNPG_API = "postgresql.cnpg.io/v1"
# The port of the -rw/-ro Services CloudNativePG creates.
POSTGRES_PORT = 5432
# CloudNativePG's own extension-free images work: we score in the app (DESIGN.md §3) and need
# only contrib extensions, which every PostgreSQL build ships.
EXTENSIONS = ("pgcrypto", "intarray")
BARMAN_CLOUD_API = "barmancloud.cnpg.io/v1"
WAIT_FOR = "pulumi.com/waitFor"
BARMAN_CLOUD_PLUGIN = "barman-cloud.cloudnative-pg.io"
# Name of the source cluster in ``externalClusters`` when recovering from a backup.
RECOVERY_SOURCE = "origin"
BACKUP_ACCESS_KEY = "ACCESS_KEY_ID"
BACKUP_SECRET_KEY = "ACCESS_SECRET_KEY"  # noqa: S105 -- an entry name, not a secret


DATABASE_NAMES: tuple[str, ...] = tuple(app_default(f"database.{db}", "name") for db in DATABASES)
DATABASE_USER = app_default("database", "user")


@dataclass(frozen=True)
class BackupArgs:
    """Object storage for base backups and archived WAL (barman cloud, S3 API)."""

    destination_path: str
    access_key_id: pulumi.Input[str]
    secret_access_key: pulumi.Input[str]
    endpoint_url: str | None = None
    # Folder name under destination_path; a restored cluster needs a new one (barman refuses to
    # archive into a path that already holds another cluster's WAL).
    server_name: str | None = None
    retention_policy: str = "30d"
    # Six-field cron (seconds first), UTC: daily at 03:00.
    schedule: str = "0 0 3 * * *"


@dataclass(frozen=True)
class RecoveryArgs:
    """Bootstrap from a backup instead of initdb, replaying WAL up to ``target_time``."""

    source_server_name: str
    target_time: str
    # Object storage of the source; None = the same as BackupArgs.destination_path.
    destination_path: str | None = None

    def __post_init__(self) -> None:
        try:
            moment = datetime.fromisoformat(self.target_time)
        except ValueError:
            raise ValueError(
                f"target time {self.target_time!r} is not ISO 8601 "
                "(use e.g. 2026-10-01T12:00:00+00:00)"
            ) from None
        if moment.tzinfo is None:
            raise ValueError(
                f"target time {self.target_time!r} has no time zone (append +00:00 for UTC)"
            )


@dataclass(frozen=True)
class DatabaseArgs:
    namespace: str
    profile: Profile
    backup: BackupArgs | None = None
    recovery: RecoveryArgs | None = None
    cluster_name: str = "acoustid-db"
    storage_class: str | None = None
    image_name: str | None = None
    monitoring: bool = False
    password: pulumi.Input[str] | None = None
    # The operator, its Barman Cloud plugin and cert-manager (``ClusterOperators.ready``).
    depends_on: list[pulumi.Resource] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.recovery is None:
            return
        if self.backup is None:
            raise ValueError("recovery needs backup settings (where the source backups are)")
        if self.server_name == self.recovery.source_server_name:
            raise ValueError(
                f"the restored cluster would archive into the source's folder "
                f"{self.server_name!r}; give backup a new serverName (e.g. {self.server_name}-2)"
            )

    @property
    def server_name(self) -> str:
        if self.backup is not None and self.backup.server_name:
            return self.backup.server_name
        return self.cluster_name


class Database(pulumi.ComponentResource):
    """The CNPG ``Cluster`` and what it needs. Outputs: ``rw_host``/``ro_host`` (Services of the
    primary and of the replicas), ``port``, ``user``, ``credentials`` (Secret with the password
    under ``password``) and ``backup_location``."""

    rw_host: pulumi.Output[str]
    ro_host: pulumi.Output[str]
    port: int
    user: str
    credentials: SecretRef
    backup_location: pulumi.Output[str]

    def __init__(
        self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("acoustid:database:Database", name, None, opts)
        self.args = args
        cluster_name = args.cluster_name
        size = args.profile.component("postgresql")

        self.credentials = SecretRef(f"{cluster_name}-app", "password")
        app_password = password(f"{name}-password", given=args.password, parent=self)
        secret(
            f"{name}-credentials",
            name=self.credentials.name,
            namespace=args.namespace,
            # CNPG reads username/password from a basic-auth Secret; the chart reads `password`.
            kind="kubernetes.io/basic-auth",
            entries={"username": DATABASE_USER, "password": app_password},
            parent=self,
        )
        # With backups, the plugin's sidecar runs in every instance pod beside PostgreSQL.
        shares = pod_shares(size, helpers=1)
        stores: list[pulumi.Resource] = []
        if args.backup is not None:
            backup_secret = secret(
                f"{name}-backup-credentials",
                name=f"{cluster_name}-backup",
                namespace=args.namespace,
                entries={
                    BACKUP_ACCESS_KEY: args.backup.access_key_id,
                    BACKUP_SECRET_KEY: args.backup.secret_access_key,
                },
                parent=self,
            )
            for store_name, destination_path in self._object_stores().items():
                stores.append(
                    k8s.apiextensions.CustomResource(
                        f"{name}-{store_name}",
                        api_version=BARMAN_CLOUD_API,
                        kind="ObjectStore",
                        metadata=k8s.meta.v1.ObjectMetaArgs(
                            name=store_name, namespace=args.namespace
                        ),
                        spec={
                            "configuration": self._object_store(destination_path),
                            "retentionPolicy": args.backup.retention_policy,
                            "instanceSidecarConfiguration": {"resources": shares.helper},
                        },
                        opts=pulumi.ResourceOptions(
                            parent=self, depends_on=[*args.depends_on, backup_secret]
                        ),
                    )
                )

        spec: dict[str, Any] = {
            "instances": size.instances,
            "primaryUpdateStrategy": "unsupervised",
            "postgresql": {"parameters": args.profile.derived.postgresql.parameters()},
            "bootstrap": self._bootstrap(),
            "storage": {"size": disk_quantity(size)},
            "resources": shares.server if args.backup is not None else machine_resources(size),
            "affinity": {
                "enablePodAntiAffinity": True,
                "topologyKey": "kubernetes.io/hostname",
                # Two instances on one node would fail together: refuse to schedule them so.
                "podAntiAffinityType": "required" if size.instances > 1 else "preferred",
            },
        }
        if args.storage_class:
            spec["storage"]["storageClass"] = args.storage_class
        if args.image_name:
            spec["imageName"] = args.image_name
        if args.backup is not None:
            spec["plugins"] = [
                {
                    "name": BARMAN_CLOUD_PLUGIN,
                    "isWALArchiver": True,
                    "parameters": {
                        "barmanObjectName": self.backup_store,
                        "serverName": args.server_name,
                    },
                }
            ]
        if args.recovery is not None:
            spec["externalClusters"] = [
                {
                    "name": RECOVERY_SOURCE,
                    "plugin": {
                        "name": BARMAN_CLOUD_PLUGIN,
                        "parameters": {
                            "barmanObjectName": self.recovery_store,
                            "serverName": args.recovery.source_server_name,
                        },
                    },
                }
            ]

        self.cluster = k8s.apiextensions.CustomResource(
            f"{name}-cluster",
            api_version=CNPG_API,
            kind="Cluster",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=cluster_name,
                namespace=args.namespace,
                # Pulumi waits until the operator reports the cluster Ready (primary accepting
                # connections), so everything depending on the Database — the app release and
                # its pre-install migration Job — starts only then.
                annotations={WAIT_FOR: "condition=Ready"},
            ),
            spec=spec,
            # The name is fixed (Services derive from it): a replacement (PITR) must delete first.
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*args.depends_on, *stores],
                delete_before_replace=True,
            ),
        )
        if args.backup is not None:
            k8s.apiextensions.CustomResource(
                f"{name}-scheduled-backup",
                api_version=CNPG_API,
                kind="ScheduledBackup",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=f"{cluster_name}-daily", namespace=args.namespace
                ),
                spec={
                    "schedule": args.backup.schedule,
                    "cluster": {"name": cluster_name},
                    "method": "plugin",
                    "pluginConfiguration": {"name": BARMAN_CLOUD_PLUGIN},
                    # A first base backup right away: WAL archiving alone cannot restore.
                    "immediate": True,
                    "backupOwnerReference": "self",
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.cluster]),
            )
        if args.monitoring:
            k8s.apiextensions.CustomResource(
                f"{name}-pod-monitor",
                api_version="monitoring.coreos.com/v1",
                kind="PodMonitor",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=cluster_name, namespace=args.namespace),
                spec={
                    "selector": {"matchLabels": {"cnpg.io/cluster": cluster_name}},
                    "podMetricsEndpoints": [{"port": "metrics"}],
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.cluster]),
            )

        # Names are known before the cluster exists; apply() ties consumers to its creation.
        created = self.cluster.id.apply(lambda _: cluster_name)
        self.rw_host = created.apply(lambda c: service_host(f"{c}-rw", args.namespace))
        # The -ro Service selects replicas only: a single instance must serve reads itself.
        reads = "ro" if size.instances > 1 else "rw"
        self.ro_host = created.apply(lambda c: service_host(f"{c}-{reads}", args.namespace))
        self.port = POSTGRES_PORT
        self.user = DATABASE_USER
        self.backup_location = pulumi.Output.from_input(
            f"{args.backup.destination_path.rstrip('/')}/{args.server_name}"
            if args.backup is not None
            else ""
        )
        self.register_outputs(
            {
                "rw_host": self.rw_host,
                "ro_host": self.ro_host,
                "credentials_secret": self.credentials.name,
                "backup_location": self.backup_location,
            }
        )

    def _bootstrap(self) -> dict[str, Any]:
        args = self.args
        app_database, *other_databases = DATABASE_NAMES
        owner = {"database": app_database, "owner": DATABASE_USER}
        secret_ref = {"secret": {"name": self.credentials.name}}
        if args.recovery is not None:
            return {
                "recovery": {
                    "source": RECOVERY_SOURCE,
                    "recoveryTarget": {"targetTime": args.recovery.target_time},
                    **owner,
                    **secret_ref,
                }
            }
        return {
            "initdb": {
                **owner,
                **secret_ref,
                # CNPG runs template1's SQL before it creates the application database, and the
                # application SQL after: databases created there inherit the extensions.
                "postInitTemplateSQL": [
                    f"CREATE EXTENSION IF NOT EXISTS {extension}" for extension in EXTENSIONS
                ],
                "postInitApplicationSQL": [
                    f"CREATE DATABASE {database} OWNER {DATABASE_USER}"
                    for database in other_databases
                ],
            }
        }

    @property
    def backup_store(self) -> str:
        """The ObjectStore the cluster archives WAL and base backups to."""
        return f"{self.args.cluster_name}-backups"

    @property
    def recovery_store(self) -> str:
        """The ObjectStore a recovery reads from: the backup store unless the source's backups
        are elsewhere."""
        recovery = self.args.recovery
        if recovery is None or recovery.destination_path in (None, self._backup().destination_path):
            return self.backup_store
        return f"{self.args.cluster_name}-origin"

    def _object_stores(self) -> dict[str, str]:
        """ObjectStore name -> destination path of every location the cluster uses."""
        backup = self._backup()
        stores = {self.backup_store: backup.destination_path}
        if self.args.recovery is not None:
            source = self.args.recovery.destination_path or backup.destination_path
            stores[self.recovery_store] = source
        return stores

    def _backup(self) -> BackupArgs:
        backup = self.args.backup
        assert backup is not None  # callers check; DatabaseArgs refuses recovery without it
        return backup

    def _object_store(self, destination_path: str) -> dict[str, Any]:
        backup = self._backup()
        secret_name = f"{self.args.cluster_name}-backup"
        store: dict[str, Any] = {
            "destinationPath": destination_path,
            "s3Credentials": {
                "accessKeyId": {"name": secret_name, "key": BACKUP_ACCESS_KEY},
                "secretAccessKey": {"name": secret_name, "key": BACKUP_SECRET_KEY},
            },
            "wal": {"compression": "gzip"},
            "data": {"compression": "gzip"},
        }
        if backup.endpoint_url:
            store["endpointURL"] = backup.endpoint_url
        return store
