"""The sizing table loads as the seed wrote it, and derives every setting from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from acoustid_stack.sizing import (
    GIB,
    MIB,
    PROCESS_CONNECTIONS,
    RESERVED_CONNECTIONS,
    TIB,
    SizingError,
    ansible_vars,
    byte_quantity,
    connection_budget,
    cpu_quantity,
    helm_values,
    load_sizing,
    parse_cpu,
    parse_size,
    to_dict,
)

MINIMUM_SEED = {
    "postgresql": (2, 4 * GIB, 100 * GIB, 1),
    "redis": (1, 1 * GIB, 10 * GIB, 1),
    "nats": (1, 512 * MIB, 10 * GIB, 1),
    "index": (2, 2 * GIB, 50 * GIB, 1),
    "api": (2, 2 * GIB, 10 * GIB, 1),
    "worker": (2, 2 * GIB, 10 * GIB, 1),
}
PRODUCTION_SEED = {
    "postgresql": (16, 64 * GIB, 2 * TIB, 3),
    "redis": (4, 16 * GIB, 100 * GIB, 3),
    "nats": (4, 8 * GIB, 500 * GIB, 3),
    "index": (8, 16 * GIB, 1 * TIB, 4),
    "api": (4, 8 * GIB, 50 * GIB, 4),
    "web": (2, 4 * GIB, 50 * GIB, 2),
    "worker": (4, 8 * GIB, 50 * GIB, 8),
    "cron": (2, 4 * GIB, 50 * GIB, 1),
}


@pytest.mark.parametrize(
    ("profile", "seed"), [("minimum", MINIMUM_SEED), ("production", PRODUCTION_SEED)]
)
def test_built_in_profiles_hold_the_seeds_tables(
    profile: str, seed: dict[str, tuple[float, int, int, int]]
) -> None:
    table = load_sizing().profile(profile)
    for component, (cpu, memory, disk, instances) in seed.items():
        size = table.component(component)
        assert (size.cpu, size.memory, size.disk, size.instances) == (cpu, memory, disk, instances)
        assert size.colocated_with is None


def test_minimum_totals_are_the_seeds_10_cores_11_5_gb_and_190_gb() -> None:
    totals = load_sizing().profile("minimum").totals
    assert (totals.cpu, totals.memory, totals.disk) == (10, int(11.5 * GIB), 190 * GIB)


def test_production_totals_add_up_every_instance() -> None:
    totals = load_sizing().profile("production").totals
    assert totals.cpu == 158
    assert totals.memory == 436 * GIB
    assert totals.disk == (6 * 1024 + 300 + 1500 + 4 * 1024 + 200 + 100 + 400 + 50) * GIB


def test_minimum_web_and_cron_share_the_api_and_worker_machines() -> None:
    minimum = load_sizing().profile("minimum")
    pods = minimum.derived.pods
    assert minimum.component("web").colocated_with == "api"
    assert pods["api"].cpu_request + pods["web"].cpu_request == minimum.component("api").cpu
    assert pods["worker"].memory_request + pods["cron"].memory_request == 2 * GIB


def test_postgresql_settings_follow_the_rules_of_thumb() -> None:
    production = load_sizing().profile("production").derived.postgresql
    assert production.shared_buffers == 16 * GIB  # 25 % of 64G
    assert production.effective_cache_size == 48 * GIB  # 75 %
    assert production.maintenance_work_mem == 2 * GIB  # RAM/16, capped
    assert production.max_wal_size == 16 * GIB
    assert production.random_page_cost == 1.1  # NVMe
    assert production.max_parallel_workers == 16
    assert production.max_parallel_workers_per_gather == 4
    # every api, web and worker pod at its autoscaling ceiling plus cron, all pools full
    assert production.max_connections == 650
    assert production.parameters()["shared_buffers"] == "16384MB"


def test_a_small_server_keeps_work_mem_at_least_4_mb() -> None:
    minimum = load_sizing().profile("minimum").derived.postgresql
    assert minimum.work_mem >= 4 * MIB
    assert minimum.max_connections == 100


@pytest.mark.parametrize("profile", ["minimum", "production"])
def test_max_connections_covers_every_pod_at_its_ceiling_with_every_pool_full(
    profile: str,
) -> None:
    table = load_sizing().profile(profile)
    derived = table.derived
    most_pods = {name: bounds.max_replicas for name, bounds in derived.autoscaling.items()}
    most_pods["cron"] = table.component("cron").instances
    for name in most_pods:
        processes = derived.server_processes.get(name, 1)
        assert derived.connections[name] == processes * PROCESS_CONNECTIONS[name].total
    held = sum(pods * derived.connections[name] for name, pods in most_pods.items())
    assert derived.postgresql.max_connections == connection_budget(held)
    assert derived.postgresql.max_connections >= held + RESERVED_CONNECTIONS


def test_per_pod_connections_count_every_pool_of_every_server_process() -> None:
    minimum = load_sizing().profile("minimum").derived.connections
    production = load_sizing().profile("production").derived.connections
    # api, per process: 3 databases x (2 for requests + 1 in each of the health checks' two
    # sets, read-write and read-only) + 4 in the lookup reader
    assert PROCESS_CONNECTIONS["api"].total == 16
    assert (minimum["api"], production["api"]) == (16, 4 * 16)
    assert (minimum["web"], production["web"]) == (6, 2 * 6)
    assert minimum["worker"] == production["worker"] == 3  # one per database, one batch at once
    assert minimum["cron"] == production["cron"] == 4  # and the leader lock's session


def test_connection_budget_adds_the_reserve_and_rounds_up_to_50_from_100() -> None:
    assert connection_budget(0) == 100
    assert connection_budget(80) == 100
    assert connection_budget(81) == 150
    assert connection_budget(612) == 650


def test_redis_jetstream_and_index_settings_come_from_their_machines() -> None:
    derived = load_sizing().profile("production").derived
    assert derived.redis.maxmemory == 12 * GIB
    assert derived.redis.directives()["maxmemory-policy"] == "volatile-lru"
    assert derived.jetstream.max_file_store == 400 * GIB
    assert derived.jetstream.stream_replicas == 3
    assert (derived.index.shards, derived.index.disk_per_shard) == (4, 1 * TIB)
    assert derived.index.memory_budget == 12 * GIB


def test_worker_autoscaling_runs_from_instances_to_max_instances() -> None:
    derived = load_sizing().profile("production").derived
    assert (
        derived.autoscaling["worker"].min_replicas,
        derived.autoscaling["worker"].max_replicas,
    ) == (8, 16)
    assert derived.autoscaling["api"].max_replicas == 8  # 2 x instances by default
    assert "cron" not in derived.autoscaling


def test_index_pods_are_guaranteed_and_stateless_pods_may_burst() -> None:
    pods = load_sizing().profile("production").derived.pods
    assert pods["index"].as_kubernetes() == {
        "requests": {"cpu": "8", "memory": "16Gi"},
        "limits": {"cpu": "8", "memory": "16Gi"},
    }
    assert pods["api"].cpu_limit == 2 * pods["api"].cpu_request
    assert pods["api"].memory_limit == pods["api"].memory_request


def test_exports_carry_the_same_numbers() -> None:
    production = load_sizing().profile("production")
    helm = helm_values(production)
    assert helm["index"]["persistence"]["size"] == "1Ti"
    assert helm["worker"]["autoscaling"] == {"minReplicas": 8, "maxReplicas": 16}
    assert ansible_vars(production)["postgresql_parameters"]["effective_cache_size"] == "49152MB"
    assert to_dict(production)["totals"]["cpu"] == 158


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("512M", 512 * MIB),
        ("4G", 4 * GIB),
        ("2T", 2 * TIB),
        ("11.5G", int(11.5 * GIB)),
        ("16Gi", 16 * GIB),
        (1024, 1024),
    ],
)
def test_sizes_parse_in_binary_units(text: object, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize(("text", "cores"), [(2, 2.0), ("0.5", 0.5), ("500m", 0.5)])
def test_cpu_parses_cores_and_millicores(text: object, cores: float) -> None:
    assert parse_cpu(text) == cores


def test_kubernetes_quantities_use_the_largest_exact_unit() -> None:
    assert [byte_quantity(v) for v in (TIB, 50 * GIB, 1536 * MIB)] == ["1Ti", "50Gi", "1536Mi"]
    assert [cpu_quantity(v) for v in (2, 0.5, 1.25)] == ["2", "500m", "1250m"]


MACHINE = "{cpu: 1, memory: 1G, disk: 1G, instances: 1}"
ALL = ", ".join(
    f"{c}: {MACHINE}" for c in ("postgresql", "redis", "nats", "index", "api", "web", "worker")
)


def medium(cron: str, totals: str = "") -> str:
    """A `medium` profile with every component on MACHINE except cron."""
    return f"profiles: {{medium: {{{totals}components: {{{ALL}, cron: {cron}}}}}}}"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sizing.yaml"
    path.write_text(text)
    return path


def test_a_user_file_adds_a_profile_beside_the_built_in_ones(tmp_path: Path) -> None:
    path = write(tmp_path, medium("{colocated_with: worker, instances: 1}"))
    table = load_sizing(path)
    assert set(table.profiles) == {"minimum", "production", "medium"}
    assert table.profile("medium").totals.cpu == 7


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        (
            "{cpu: 1, memory: 1X, disk: 1G, instances: 1}",
            "profiles.medium.components.cron.memory: invalid size '1X'",
        ),
        (
            "{cpu: -1, memory: 1G, disk: 1G, instances: 1}",
            "profiles.medium.components.cron.cpu: cpu must be a positive",
        ),
        (
            "{cpu: 1, memory: 1G, disk: 1G, instances: -2}",
            "profiles.medium.components.cron.instances: Input should be greater than or equal to 1",
        ),
        ("{cpu: 1, memory: 1G, disk: 1G}", "profiles.medium.components.cron.instances: missing"),
        ("{cpu: 1, memory: 1G, instances: 1}", "profiles.medium.components.cron.disk: missing"),
        (
            "{cpu: 1, memory: 1G, disk: 1G, instances: 1, ram: 2}",
            "profiles.medium.components.cron.ram: unknown key",
        ),
        (
            "{cpu: 1, memory: 1G, disk: 1G, instances: '1'}",
            "profiles.medium.components.cron.instances: Input should be a valid integer",
        ),
        (
            "{colocated_with: web, instances: 2}",
            "profiles.medium.components.cron.instances: must equal web's instances",
        ),
        ("{colocated_with: cron, instances: 1}", "profiles.medium.components.cron.colocated_with"),
        (
            "{cpu: 1, memory: 1G, disk: 1G, instances: 2, max_instances: 1}",
            "cron.max_instances: must be at least instances",
        ),
    ],
)
def test_a_bad_file_names_the_field(tmp_path: Path, cron: str, message: str) -> None:
    path = write(tmp_path, medium(cron))
    with pytest.raises(SizingError, match="^" + str(path).replace(".", r"\.")) as error:
        load_sizing(path)
    assert message in str(error.value)


def test_missing_components_and_wrong_totals_are_named(tmp_path: Path) -> None:
    with pytest.raises(SizingError, match=r"profiles\.tiny\.components: missing postgresql, redis"):
        load_sizing(write(tmp_path, f"profiles: {{tiny: {{components: {{cron: {MACHINE}}}}}}}"))
    totals = medium(MACHINE, totals="totals: {cpu: 9, memory: 8G, disk: 8G}, ")
    with pytest.raises(
        SizingError, match=r"profiles\.medium\.totals\.cpu: the components add up to 8, not 9"
    ):
        load_sizing(write(tmp_path, totals))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a list", "top level: expected a mapping with a 'profiles' key"),
        (
            "profiles: {x: {components: {gpu: {cpu: 1}}}}",
            "profiles.x.components.gpu: unknown name; use one of postgresql",
        ),
        ("profiles: [", "not valid YAML"),
    ],
)
def test_malformed_files_get_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SizingError) as error:
        load_sizing(write(tmp_path, text))
    assert message in str(error.value)
    assert "Traceback" not in str(error.value)


def test_unknown_profile_and_component_say_what_exists(tmp_path: Path) -> None:
    table = load_sizing()
    with pytest.raises(
        SizingError, match="unknown sizing profile 'medium'; known: minimum, production"
    ):
        table.profile("medium")
    with pytest.raises(SizingError, match="unknown component 'gpu'"):
        table.profile("minimum").component("gpu")
    with pytest.raises(SizingError, match="cannot read sizing file"):
        load_sizing(tmp_path / "absent.yaml")
