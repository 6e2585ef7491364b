"""Messaging (NATS JetStream) and Cache (Redis with Sentinel): chart inputs against the table."""

from __future__ import annotations

import pytest
from pulumi_harness import Deployment

from acoustid_stack.sizing import byte_quantity, load_sizing

pytestmark = pytest.mark.deploy


def test_nats_runs_jetstream_on_volumes_sized_from_the_table(deployment: Deployment) -> None:
    profile = load_sizing().profile(deployment.outputs["sizing_profile"])
    size = profile.component("nats")
    config = deployment.release("nats").values["config"]
    assert config["cluster"]["replicas"] == size.instances
    assert config["cluster"]["enabled"] is (size.instances > 1)
    store = config["jetstream"]["fileStore"]
    assert config["jetstream"]["enabled"] is True
    assert store["pvc"]["size"] == byte_quantity(size.disk)
    assert store["maxSize"] == byte_quantity(profile.derived.jetstream.max_file_store)
    assert config["monitor"]["enabled"] is True


def test_production_nats_is_a_three_node_cluster_and_streams_get_three_replicas(
    production: Deployment,
) -> None:
    config = production.release("nats").values["config"]
    assert config["cluster"] == {"enabled": True, "replicas": 3}
    assert production.release("acoustid-stack").values["nats"]["streamReplicas"] == 3


def test_redis_has_three_sentinel_nodes_with_aof_every_second(production: Deployment) -> None:
    values = production.release("redis-ha").values
    assert values["replicas"] == 3
    assert values["sentinel"]["quorum"] == 2
    assert values["hardAntiAffinity"] is True
    config = values["redis"]["config"]
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "everysec"
    assert config["save"]
    assert values["persistentVolume"]["enabled"] is True


def test_redis_memory_and_volume_come_from_the_table(deployment: Deployment) -> None:
    profile = load_sizing().profile(deployment.outputs["sizing_profile"])
    values = deployment.release("redis-ha").values
    assert values["redis"]["config"]["maxmemory"] == str(profile.derived.redis.maxmemory)
    assert values["persistentVolume"]["size"] == byte_quantity(profile.component("redis").disk)
    assert values["replicas"] == profile.component("redis").instances


def test_redis_password_comes_from_a_secret(deployment: Deployment) -> None:
    values = deployment.release("redis-ha").values
    assert values["auth"] is True
    assert values["existingSecret"] == deployment.outputs["redis_credentials_secret"]
    assert "redisPassword" not in values


def test_single_redis_node_accepts_writes_without_replicas(minimum: Deployment) -> None:
    values = minimum.release("redis-ha").values
    assert values["replicas"] == 1
    assert values["redis"]["config"]["min-replicas-to-write"] == 0
