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


CLOUDNATIVE_PG = ChartRef("https://cloudnative-pg.github.io/charts", "cloudnative-pg", "0.26.0")
NATS = ChartRef("https://nats-io.github.io/k8s/helm/charts/", "nats", "2.14.2")
# DandyDeveloper's redis-ha (the maintained successor of stable/redis-ha): see infra/README.md
# for why we chose it over Bitnami and the operators.
REDIS_HA = ChartRef("https://dandydeveloper.github.io/charts", "redis-ha", "4.39.0")
