"""``Database``: PostgreSQL on CloudNativePG — primary + streaming replicas, barman-cloud WAL
archiving and base backups to object storage, a daily ScheduledBackup, and a point-in-time
recovery switch for disaster recovery (DESIGN.md §8)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from acoustid_stack.config.table import DATABASES
from acoustid_stack.sizing import Profile
from components.appconfig import app_default
from components.charts import CLOUDNATIVE_PG
from components.credentials import SecretRef, password, secret
from components.kube import disk_quantity, machine_resources, service_host

CNPG_API = "postgresql.cnpg.io/v1"
# The port of the -rw/-ro Services CloudNativePG creates.
POSTGRES_PORT = 5432
# CloudNativePG's own extension-free images work: we score in the app (DESIGN.md §3) and need
# only contrib extensions, which every PostgreSQL build ships.
EXTENSIONS = ("pgcrypto", "intarray")
OPERATOR_NAMESPACE = "cnpg-system"
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
    install_operator: bool = True
    monitoring: bool = False
    password: pulumi.Input[str] | None = None

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

        operator: list[pulumi.Resource] = []
        if args.install_operator:
            operator.append(
                k8s.helm.v3.Release(
                    f"{name}-operator",
                    name="cnpg",
                    chart=CLOUDNATIVE_PG.chart,
                    version=CLOUDNATIVE_PG.version,
                    repository_opts=CLOUDNATIVE_PG.repository_opts(),
                    namespace=OPERATOR_NAMESPACE,
                    create_namespace=True,
                    opts=pulumi.ResourceOptions(parent=self),
                )
            )

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
        backup_secret: list[pulumi.Resource] = []
        if args.backup is not None:
            backup_secret.append(
                secret(
                    f"{name}-backup-credentials",
                    name=f"{cluster_name}-backup",
                    namespace=args.namespace,
                    entries={
                        BACKUP_ACCESS_KEY: args.backup.access_key_id,
                        BACKUP_SECRET_KEY: args.backup.secret_access_key,
                    },
                    parent=self,
                )
            )

        spec: dict[str, Any] = {
            "instances": size.instances,
            "primaryUpdateStrategy": "unsupervised",
            "postgresql": {"parameters": args.profile.derived.postgresql.parameters()},
            "bootstrap": self._bootstrap(),
            "storage": {"size": disk_quantity(size)},
            "resources": machine_resources(size),
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
            spec["backup"] = {
                "barmanObjectStore": self._object_store(
                    args.backup.destination_path, args.server_name
                ),
                "retentionPolicy": args.backup.retention_policy,
            }
        if args.recovery is not None:
            assert args.backup is not None  # checked by DatabaseArgs
            spec["externalClusters"] = [
                {
                    "name": RECOVERY_SOURCE,
                    "barmanObjectStore": self._object_store(
                        args.recovery.destination_path or args.backup.destination_path,
                        args.recovery.source_server_name,
                    ),
                }
            ]

        self.cluster = k8s.apiextensions.CustomResource(
            f"{name}-cluster",
            api_version=CNPG_API,
            kind="Cluster",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=cluster_name, namespace=args.namespace),
            spec=spec,
            # The name is fixed (Services derive from it): a replacement (PITR) must delete first.
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*operator, *backup_secret],
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
                    "method": "barmanObjectStore",
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

    def _object_store(self, destination_path: str, server_name: str) -> dict[str, Any]:
        backup = self.args.backup
        assert backup is not None
        secret_name = f"{self.args.cluster_name}-backup"
        store: dict[str, Any] = {
            "destinationPath": destination_path,
            "serverName": server_name,
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
