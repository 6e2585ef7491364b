"""Passwords as Kubernetes Secrets: from Pulumi secret config, else generated with pulumi-random.

A generated password lives in the Pulumi state (encrypted, marked secret) and in one Secret;
pods read it through ``existingSecret`` / ``*_file`` settings, so no plain value ever reaches a
ConfigMap, a Helm value or a stack output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

# Letters and digits only: the value goes into connection URLs and config files unescaped.
PASSWORD_LENGTH = 32


@dataclass(frozen=True)
class SecretRef:
    """Where a credential lives: Secret ``name``, entry ``key`` (what charts call
    ``existingSecret`` / ``existingSecretKey``)."""

    name: str
    key: str


def password(
    resource_name: str, *, given: pulumi.Input[str] | None, parent: pulumi.Resource
) -> pulumi.Output[str]:
    """``given`` (secret config) or a new random password; always a secret Output."""
    if given is not None:
        return pulumi.Output.secret(given)
    generated = random.RandomPassword(
        resource_name,
        length=PASSWORD_LENGTH,
        special=False,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return pulumi.Output.secret(generated.result)


def secret(
    resource_name: str,
    *,
    name: str,
    namespace: str,
    entries: Mapping[str, pulumi.Input[str]],
    parent: pulumi.Resource,
    kind: str = "Opaque",
    depends_on: list[pulumi.Resource] | None = None,
) -> k8s.core.v1.Secret:
    """A Secret holding ``entries``; every value is marked secret in the Pulumi state."""
    return k8s.core.v1.Secret(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace),
        type=kind,
        string_data={key: pulumi.Output.secret(value) for key, value in entries.items()},
        opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on or []),
    )


def password_secret(
    name: str,
    *,
    ref: SecretRef,
    namespace: str,
    given: pulumi.Input[str] | None,
    parent: pulumi.Resource,
) -> k8s.core.v1.Secret:
    """The Secret ``ref`` names, holding ``given`` or a generated password under its key."""
    return secret(
        f"{name}-credentials",
        name=ref.name,
        namespace=namespace,
        entries={ref.key: password(f"{name}-password", given=given, parent=parent)},
        parent=parent,
    )
