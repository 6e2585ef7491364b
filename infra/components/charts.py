"""The third-party Helm charts we install, pinned so that a `pulumi up` next year installs what
was tested. Bump a version here, read the chart's upgrade notes, and run `pulumi preview`."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class ChartRef:
    repo: str
    chart: str
    version: str

    def repository_opts(self) -> k8s.helm.v3.RepositoryOptsArgs:
        return k8s.helm.v3.RepositoryOptsArgs(repo=self.repo)


CNPG_CHARTS = "https://cloudnative-pg.github.io/charts"
# Operator 1.30.0 (supports Kubernetes 1.31 to 1.33).
CLOUDNATIVE_PG = ChartRef(CNPG_CHARTS, "cloudnative-pg", "0.29.0")
# Plugin v0.13.0: WAL archiving and base backups through ObjectStore resources (the operator's
# in-tree barmanObjectStore is deprecated and will be removed).
BARMAN_CLOUD = ChartRef(CNPG_CHARTS, "plugin-barman-cloud", "0.7.0")
# The plugin's TLS certificates are issued by cert-manager.
CERT_MANAGER = ChartRef("https://charts.jetstack.io", "cert-manager", "v1.21.1")
NATS = ChartRef("https://nats-io.github.io/k8s/helm/charts/", "nats", "2.14.2")
# DandyDeveloper's redis-ha (the maintained successor of stable/redis-ha): see infra/README.md
# for why we chose it over Bitnami and the operators.
REDIS_HA = ChartRef("https://dandydeveloper.github.io/charts", "redis-ha", "4.39.0")
