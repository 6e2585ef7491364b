"""What `up` builds in its data folder, before anything runs."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from acoustid_stack.config import load_settings
from acoustid_stack.local.process import free_port
from acoustid_stack.local.stack import DEFAULT_PORTS, Layout, Stack, StackOptions, scaled_to_machine
from acoustid_stack.sizing import load_sizing

pytestmark = pytest.mark.integration


def machine_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def test_a_profile_is_scaled_down_to_fit_this_machine() -> None:
    production = load_sizing().profile("production")
    scaled = scaled_to_machine(production)
    assert scaled.totals.memory <= machine_memory()
    assert scaled.totals.cpu <= (os.cpu_count() or 1) + 1e-9
    ratio = scaled.component("postgresql").memory / production.component("postgresql").memory
    assert ratio == pytest.approx(
        scaled.component("redis").memory / production.component("redis").memory, rel=1e-6
    )


@pytest.fixture
def traversable_tmp() -> Iterator[Path]:
    """A folder outside pytest's basetemp (0700), which the user PostgreSQL runs as (when we
    are root) cannot enter."""
    folder = Path(tempfile.mkdtemp(prefix="acoustid-stack-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_profile_minimum_tunes_postgresql_and_redis(traversable_tmp: Path) -> None:
    stack = Stack(StackOptions(data_dir=traversable_tmp / "data", profile="minimum"))
    services = {s.name: s for s in stack.infrastructure()}
    derived = scaled_to_machine(load_sizing().profile("minimum")).derived
    conf = (traversable_tmp / "data" / "postgresql" / "postgresql.conf").read_text()
    for key, value in derived.postgresql.parameters().items():
        assert f"{key} = '{value}'" in conf
    redis_argv = services["redis"].process.argv
    assert redis_argv[redis_argv.index("--maxmemory") + 1] == str(derived.redis.maxmemory)


def test_ports_config_and_secret_survive_a_second_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    chosen = {name: free_port() for name in DEFAULT_PORTS}
    (data / "ports.json").write_text(json.dumps(chosen))
    first = Stack(StackOptions(data_dir=data))
    secret = Layout(data).secret.read_text()
    second = Stack(StackOptions(data_dir=data))
    assert first.ports == second.ports == chosen
    assert Layout(data).secret.read_text() == secret
    settings = load_settings(str(second.config_path), environ={})
    assert settings.database.app.port == chosen["postgresql"]
    assert settings.index.shards == [f"http://127.0.0.1:{chosen['index']}"]
    assert settings.index.snapshot_dir == str(Layout(data).index_snapshots)  # cron's snapshots
    assert settings.nats.servers == [f"nats://127.0.0.1:{chosen['nats']}"]
    assert settings.website.secret == secret
