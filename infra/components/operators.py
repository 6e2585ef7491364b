"""``ClusterOperators``: the cluster-wide parts the stack builds on, each optional because a
shared cluster often has them already — cert-manager, the CloudNativePG operator and its
Barman Cloud plugin (WAL archiving and base backups to object storage, PITR).

The plugin talks to the operator over mTLS with certificates cert-manager issues, and it must
run in the operator's namespace, so it waits for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.charts import BARMAN_CLOUD, CERT_MANAGER, CLOUDNATIVE_PG, ChartRef

CNPG_NAMESPACE = "cnpg-system"
CERT_MANAGER_NAMESPACE = "cert-manager"


@dataclass(frozen=True)
class ClusterOperatorsArgs:
    """What to install; False = the cluster already has it."""

    cert_manager: bool = True
    cnpg_operator: bool = True
    barman_cloud_plugin: bool = True


def cert_manager_values() -> dict[str, Any]:
    # Its CRDs come with the release (the chart leaves them out by default) and stay on
    # uninstall (the chart's crds.keep), so that certificates survive a release removal.
    return {"crds": {"enabled": True}}


class ClusterOperators(pulumi.ComponentResource):
    """The releases installed; ``ready`` lists them for ``depends_on`` of what needs them."""

    ready: list[pulumi.Resource]

    def __init__(
        self, name: str, args: ClusterOperatorsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("acoustid:operators:ClusterOperators", name, None, opts)
        cert_manager = self._release(
            f"{name}-cert-manager",
            CERT_MANAGER,
            "cert-manager",
            CERT_MANAGER_NAMESPACE,
            cert_manager_values(),
            enabled=args.cert_manager,
        )
        cnpg = self._release(
            f"{name}-cnpg", CLOUDNATIVE_PG, "cnpg", CNPG_NAMESPACE, {}, enabled=args.cnpg_operator
        )
        plugin = self._release(
            f"{name}-barman-cloud",
            BARMAN_CLOUD,
            "barman-cloud",
            CNPG_NAMESPACE,
            {},
            enabled=args.barman_cloud_plugin,
            after=[*cert_manager, *cnpg],
        )
        self.ready = [*cert_manager, *cnpg, *plugin]
        self.register_outputs({})

    def _release(
        self,
        name: str,
        ref: ChartRef,
        release_name: str,
        namespace: str,
        values: dict[str, Any],
        *,
        enabled: bool,
        after: list[pulumi.Resource] | None = None,
    ) -> list[pulumi.Resource]:
        if not enabled:
            return []
        release = k8s.helm.v3.Release(
            name,
            name=release_name,
            chart=ref.chart,
            version=ref.version,
            repository_opts=ref.repository_opts(),
            namespace=namespace,
            create_namespace=True,
            values=values,
            opts=pulumi.ResourceOptions(parent=self, depends_on=after or []),
        )
        return [release]
