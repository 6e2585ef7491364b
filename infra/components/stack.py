"""``AcoustidStack``: the whole production service in one namespace — the cluster operators it
needs (optional), Database, Messaging and Cache, then the app wired to them."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from acoustid_stack.sizing import Profile
from components.app import (
    AcoustidApp,
    AcoustidAppArgs,
    CacheConnection,
    DatabaseConnection,
    IngressArgs,
    MessagingConnection,
)
from components.appconfig import app_default
from components.cache import Cache, CacheArgs
from components.credentials import SecretRef, password, secret
from components.database import BackupArgs, Database, DatabaseArgs, RecoveryArgs
from components.messaging import Messaging, MessagingArgs
from components.operators import ClusterOperators, ClusterOperatorsArgs


@dataclass(frozen=True)
class StorageClasses:
    """StorageClass per part; None = the cluster's default class."""

    database: str | None = None
    messaging: str | None = None
    cache: str | None = None
    index: str | None = None


@dataclass(frozen=True)
class Passwords:
    """Secret config values; None = generate one with pulumi-random."""

    database: pulumi.Input[str] | None = None
    redis: pulumi.Input[str] | None = None
    nats: pulumi.Input[str] | None = None
    website: pulumi.Input[str] | None = None


@dataclass(frozen=True)
class SentryArgs:
    """Error reporting: the DSN (secret config) goes into a Secret the pods mount as a file."""

    dsn: pulumi.Input[str]
    environment: str | None = None


@dataclass(frozen=True)
class AcoustidStackArgs:
    profile: Profile
    namespace: str = "acoustid"
    create_namespace: bool = True
    backup: BackupArgs | None = None
    recovery: RecoveryArgs | None = None
    storage_classes: StorageClasses = StorageClasses()
    passwords: Passwords = Passwords()
    operators: ClusterOperatorsArgs = field(default_factory=ClusterOperatorsArgs)
    monitoring: bool = False
    image_tag: str | None = None
    index_image_tag: str | None = None
    postgres_image: str | None = None
    ingress: IngressArgs | None = None
    sentry: SentryArgs | None = None


class AcoustidStack(pulumi.ComponentResource):
    """Everything. Outputs: ``api_url``, ``database_rw_host``, ``database_ro_host``,
    ``redis_sentinels``, ``nats_servers``, ``backup_location`` and the names (never the values)
    of the Secrets that hold the passwords and the Sentry DSN (``sentry_secret``, empty without
    Sentry)."""

    def __init__(
        self, name: str, args: AcoustidStackArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("acoustid:stack:AcoustidStack", name, None, opts)
        namespace: list[pulumi.Resource] = []
        if args.create_namespace:
            namespace.append(
                k8s.core.v1.Namespace(
                    f"{name}-namespace",
                    metadata=k8s.meta.v1.ObjectMetaArgs(name=args.namespace),
                    opts=pulumi.ResourceOptions(parent=self),
                )
            )
        inside = pulumi.ResourceOptions(parent=self, depends_on=namespace)
        operators = ClusterOperators(
            f"{name}-operators", args.operators, pulumi.ResourceOptions(parent=self)
        )

        self.database = Database(
            f"{name}-database",
            DatabaseArgs(
                namespace=args.namespace,
                profile=args.profile,
                backup=args.backup,
                recovery=args.recovery,
                storage_class=args.storage_classes.database,
                image_name=args.postgres_image,
                depends_on=operators.ready,
                monitoring=args.monitoring,
                password=args.passwords.database,
            ),
            inside,
        )
        self.messaging = Messaging(
            f"{name}-messaging",
            MessagingArgs(
                namespace=args.namespace,
                profile=args.profile,
                storage_class=args.storage_classes.messaging,
                monitoring=args.monitoring,
                password=args.passwords.nats,
            ),
            inside,
        )
        self.cache = Cache(
            f"{name}-cache",
            CacheArgs(
                namespace=args.namespace,
                profile=args.profile,
                sentinel_master=app_default("redis", "sentinel_master"),
                storage_class=args.storage_classes.cache,
                monitoring=args.monitoring,
                password=args.passwords.redis,
            ),
            inside,
        )
        website = SecretRef("acoustid-website", "secret")
        website_secret = secret(
            f"{name}-website-secret",
            name=website.name,
            namespace=args.namespace,
            entries={
                website.key: password(
                    f"{name}-website-password", given=args.passwords.website, parent=self
                )
            },
            parent=self,
            depends_on=namespace,
        )
        app_secrets = [website_secret]
        sentry = None
        if args.sentry is not None:
            sentry = SecretRef("acoustid-sentry", "dsn")
            app_secrets.append(
                secret(
                    f"{name}-sentry-secret",
                    name=sentry.name,
                    namespace=args.namespace,
                    entries={sentry.key: args.sentry.dsn},
                    parent=self,
                    depends_on=namespace,
                )
            )
        self.app = AcoustidApp(
            f"{name}-app",
            AcoustidAppArgs(
                namespace=args.namespace,
                profile=args.profile,
                database=DatabaseConnection(
                    rw_host=self.database.rw_host,
                    ro_host=self.database.ro_host,
                    port=self.database.port,
                    user=self.database.user,
                    credentials=self.database.credentials,
                ),
                cache=CacheConnection(
                    sentinels=self.cache.sentinels,
                    sentinel_master=self.cache.sentinel_master,
                    credentials=self.cache.credentials,
                ),
                messaging=MessagingConnection(
                    servers=self.messaging.servers,
                    user=self.messaging.user,
                    credentials=self.messaging.credentials,
                ),
                website_secret=website,
                sentry=sentry,
                sentry_environment=args.sentry.environment if args.sentry else None,
                image_tag=args.image_tag,
                index_image_tag=args.index_image_tag,
                index_storage_class=args.storage_classes.index,
                ingress=args.ingress,
                monitoring=args.monitoring,
                depends_on=[self.database, self.messaging, self.cache, *app_secrets],
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self.outputs: dict[str, pulumi.Input[object]] = {
            "api_url": self.app.api_url,
            "database_rw_host": self.database.rw_host,
            "database_ro_host": self.database.ro_host,
            "database_credentials_secret": self.database.credentials.name,
            "redis_sentinels": self.cache.sentinels,
            "redis_credentials_secret": self.cache.credentials.name,
            "nats_servers": self.messaging.servers,
            "nats_monitor_url": self.messaging.monitor_url,
            "nats_credentials_secret": self.messaging.credentials.name,
            "website_secret": website.name,
            "sentry_secret": sentry.name if sentry else "",
            "backup_location": self.database.backup_location,
            "sizing_profile": args.profile.name,
        }
        self.register_outputs(self.outputs)
