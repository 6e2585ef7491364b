"""Stack configuration (``Pulumi.<stack>.yaml``) → ``AcoustidStackArgs``, read once.

Every problem raises ``StackConfigError`` naming the key, e.g. ``acoustid-stack:profile: unknown
sizing profile 'big'; known: minimum, production``; Pulumi prints it without a traceback.
Keys (all under the project's namespace, see infra/README.md):

- ``profile`` (required): sizing profile; ``sizingFile``: a YAML with more profiles.
- ``namespace`` (default ``acoustid``), ``createNamespace`` (default true).
- ``storageClasses``: ``{database, messaging, cache, index}``, each optional.
- ``backup``: ``{destinationPath, endpointURL, serverName, retentionPolicy, schedule}``, required
  unless ``{enabled: false}``; with secrets ``backupAccessKeyId`` and ``backupSecretAccessKey``.
- ``recovery``: ``{sourceServerName, targetTime, destinationPath}`` bootstraps PostgreSQL from
  the backups at that time instead of creating empty databases.
- ``installCnpgOperator``, ``installBarmanCloudPlugin``, ``installCertManager`` (each default
  true; false when the cluster already has it), ``monitoring`` (default false).
- ``imageTag``, ``indexImageTag``, ``postgresImage``; ``ingress``: ``{host, className, tlsSecret}``.
- Secrets ``databasePassword``, ``redisPassword``, ``natsPassword``, ``websiteSecret``: generated
  when unset.
- Secret ``sentryDsn`` (optional): every process reports errors there; ``sentryEnvironment``
  names the environment in Sentry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pulumi
from pydantic import BaseModel, ConfigDict, ValidationError

from acoustid_stack.sizing import SizingError, load_sizing
from components.app import IngressArgs
from components.database import BackupArgs, DatabaseArgs, RecoveryArgs
from components.operators import ClusterOperatorsArgs
from components.stack import AcoustidStackArgs, Passwords, SentryArgs, StorageClasses


class StackConfigError(pulumi.RunError):
    """A stack configuration value is missing or wrong; the message names the key."""


class _Object(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _StorageClasses(_Object):
    database: str | None = None
    messaging: str | None = None
    cache: str | None = None
    index: str | None = None


class _Backup(_Object):
    enabled: bool = True
    destinationPath: str | None = None
    endpointURL: str | None = None
    serverName: str | None = None
    retentionPolicy: str | None = None
    schedule: str | None = None


class _Recovery(_Object):
    sourceServerName: str
    targetTime: str
    destinationPath: str | None = None


class _Ingress(_Object):
    host: str
    className: str | None = None
    tlsSecret: str | None = None


_Model = TypeVar("_Model", bound=_Object)


def load_stack_args(config: pulumi.Config) -> AcoustidStackArgs:
    """The stack's arguments from ``config``; raises ``StackConfigError`` naming a bad key."""

    def key(name: str) -> str:
        return f"{config.name}:{name}"

    def read(name: str, model: type[_Model]) -> _Model | None:
        raw: Any = config.get_object(name)
        if raw is None:
            return None
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join([name, *(str(part) for part in error["loc"])])
            raise StackConfigError(f"{key(where)}: {error['msg']}") from None

    try:
        profile = load_sizing(config.get("sizingFile")).profile(config.require("profile"))
    except SizingError as exc:
        raise StackConfigError(f"{key('profile')}: {exc}") from None

    backup_config = read("backup", _Backup)
    if backup_config is None:
        raise StackConfigError(
            f"{key('backup')} is missing; set backup.destinationPath (e.g. s3://bucket/acoustid) "
            "and the backupAccessKeyId/backupSecretAccessKey secrets, or backup.enabled: false"
        )
    backup = _backup_args(backup_config, config, key)

    recovery_config = read("recovery", _Recovery)
    recovery = None
    if recovery_config is not None:
        try:
            recovery = RecoveryArgs(
                source_server_name=recovery_config.sourceServerName,
                target_time=recovery_config.targetTime,
                destination_path=recovery_config.destinationPath,
            )
        except ValueError as exc:
            raise StackConfigError(f"{key('recovery.targetTime')}: {exc}") from None
    namespace = config.get("namespace") or "acoustid"
    try:
        DatabaseArgs(namespace=namespace, profile=profile, backup=backup, recovery=recovery)
    except ValueError as exc:
        raise StackConfigError(f"{key('recovery')}: {exc}") from None

    storage = read("storageClasses", _StorageClasses) or _StorageClasses()
    ingress = read("ingress", _Ingress)
    sentry_dsn = config.get_secret("sentryDsn")
    return AcoustidStackArgs(
        profile=profile,
        namespace=namespace,
        create_namespace=_flag(config, "createNamespace", default=True),
        backup=backup,
        recovery=recovery,
        storage_classes=StorageClasses(**storage.model_dump()),
        passwords=Passwords(
            database=config.get_secret("databasePassword"),
            redis=config.get_secret("redisPassword"),
            nats=config.get_secret("natsPassword"),
            website=config.get_secret("websiteSecret"),
        ),
        operators=ClusterOperatorsArgs(
            cert_manager=_flag(config, "installCertManager", default=True),
            cnpg_operator=_flag(config, "installCnpgOperator", default=True),
            barman_cloud_plugin=_flag(config, "installBarmanCloudPlugin", default=True),
        ),
        monitoring=_flag(config, "monitoring", default=False),
        image_tag=config.get("imageTag"),
        index_image_tag=config.get("indexImageTag"),
        postgres_image=config.get("postgresImage"),
        ingress=(
            IngressArgs(
                host=ingress.host, class_name=ingress.className, tls_secret=ingress.tlsSecret
            )
            if ingress is not None
            else None
        ),
        sentry=(
            SentryArgs(dsn=sentry_dsn, environment=config.get("sentryEnvironment"))
            if sentry_dsn is not None
            else None
        ),
    )


def _backup_args(
    backup: _Backup, config: pulumi.Config, key: Callable[[str], str]
) -> BackupArgs | None:
    if not backup.enabled:
        return None
    if not backup.destinationPath:
        raise StackConfigError(
            f"{key('backup.destinationPath')} is missing; set the object storage URL "
            "(e.g. s3://bucket/acoustid) or backup.enabled: false"
        )
    # Only the keys the stack sets: BackupArgs holds the defaults.
    optional = {
        "endpoint_url": backup.endpointURL,
        "server_name": backup.serverName,
        "retention_policy": backup.retentionPolicy,
        "schedule": backup.schedule,
    }
    return BackupArgs(
        destination_path=backup.destinationPath,
        access_key_id=config.require_secret("backupAccessKeyId"),
        secret_access_key=config.require_secret("backupSecretAccessKey"),
        **{name: value for name, value in optional.items() if value is not None},
    )


def _flag(config: pulumi.Config, name: str, *, default: bool) -> bool:
    value = config.get_bool(name)
    return default if value is None else value
