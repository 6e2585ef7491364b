"""The playbooks without hosts: lint, syntax, argument specs, generated sizing, shard layout."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from acoustid_stack import sizing
from acoustid_stack.sizing_commands import render_export

from .deployment import PLAYBOOKS


def _load_filter_plugin() -> ModuleType:
    path = PLAYBOOKS / "filter_plugins/index_shards.py"
    spec = importlib.util.spec_from_file_location("index_shards", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


index_shard_layout = _load_filter_plugin().index_shard_layout

pytestmark = pytest.mark.deploy

PLAYBOOK_FILES = sorted(p.name for p in PLAYBOOKS.glob("*.yml"))
INVENTORY_PROFILES = {"single": "minimum", "example": "production"}
ROLES = ("common", "postgresql", "pgbackrest", "redis", "nats", "index", "acoustid")


def ansible(
    argv: list[str], tmp_path: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(PLAYBOOKS / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
    }
    return subprocess.run(
        argv, cwd=PLAYBOOKS, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_focused_playbooks_exist() -> None:
    expected = {"site", "postgresql", "app", "upgrade", "backup", "restore", "failover"}
    assert expected <= {name.removesuffix(".yml") for name in PLAYBOOK_FILES}


def test_every_role_has_the_standard_folders_and_an_argument_spec() -> None:
    for role in ROLES:
        for folder in ("defaults", "tasks", "handlers", "templates", "meta"):
            assert (PLAYBOOKS / "roles" / role / folder).is_dir(), f"{role}/{folder}"
        spec = yaml.safe_load((PLAYBOOKS / "roles" / role / "meta/argument_specs.yml").read_text())
        declared = set(spec["argument_specs"]["main"]["options"])
        defaults = yaml.safe_load((PLAYBOOKS / "roles" / role / "defaults/main.yml").read_text())
        assert set(defaults) <= declared, f"{role}: undeclared {set(defaults) - declared}"


@pytest.mark.slow
def test_ansible_lint_production_profile_is_clean(tmp_path: Path) -> None:
    result = ansible(
        ["ansible-lint", "--offline", "--profile", "production", "--nocolor"], tmp_path
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


@pytest.mark.parametrize("inventory", sorted(INVENTORY_PROFILES))
def test_every_playbook_passes_syntax_check(inventory: str, tmp_path: Path) -> None:
    result = ansible(
        ["ansible-playbook", "--syntax-check", "-i", f"inventories/{inventory}", *PLAYBOOK_FILES],
        tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("playbook: ") == len(PLAYBOOK_FILES)


def test_index_shards_go_one_per_host_then_to_further_ports() -> None:
    layout = index_shard_layout(["a", "b"], 5, 6081)
    assert [(s["host"], s["port"]) for s in layout] == [
        ("a", 6081),
        ("b", 6081),
        ("a", 6082),
        ("b", 6082),
        ("a", 6083),
    ]
    assert [s["shard"] for s in layout] == [0, 1, 2, 3, 4]


def test_an_empty_index_group_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="index group has no hosts"):
        index_shard_layout([], 2, 6081)


@pytest.mark.parametrize(("inventory", "profile"), sorted(INVENTORY_PROFILES.items()))
def test_generated_sizing_group_vars_match_the_sizing_table(inventory: str, profile: str) -> None:
    path = PLAYBOOKS / "inventories" / inventory / "group_vars/all/sizing.yml"
    expected = render_export(sizing.load_sizing().profile(profile), "ansible")
    assert path.read_text() == expected, (
        f"{path} drifted from sizing.yaml; regenerate it with `acoustid-stack sizing export "
        f"--profile {profile} --target ansible --output {path.relative_to(PLAYBOOKS.parent)}`"
    )


def _run_role(
    tmp_path: Path, role: str, variables: dict[str, object]
) -> subprocess.CompletedProcess[str]:
    groups = ["postgresql_primary", "redis", "nats", "index", "api", "worker", "cron"]
    inventory = {
        "all": {
            "hosts": {
                "localhost": {
                    "ansible_connection": "local",
                    "acoustid_private_address": "127.0.0.1",
                }
            },
            "children": {group: {"hosts": {"localhost": None}} for group in groups},
        }
    }
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    play = [
        {
            "name": "Apply one role",
            "hosts": "localhost",
            "gather_facts": False,
            "roles": [{"role": role, "vars": variables}],
        }
    ]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    return ansible(
        [
            "ansible-playbook",
            "-i",
            str(tmp_path / "hosts.yml"),
            str(tmp_path / "play.yml"),
            "-e",
            f"ansible_python_interpreter={sys.executable}",
        ],
        tmp_path,
    )


def test_a_wrongly_typed_role_variable_fails_before_any_task(tmp_path: Path) -> None:
    result = _run_role(tmp_path, "common", {"common_firewall_ssh_port": "twenty-two"})
    assert result.returncode != 0
    assert "common_firewall_ssh_port" in result.stdout
    assert "int" in result.stdout
    assert "Install base packages" not in result.stdout


def test_a_missing_secret_fails_with_the_variable_named(tmp_path: Path) -> None:
    result = _run_role(tmp_path, "redis", {"redis_maxmemory_policy": "sometimes"})
    assert result.returncode != 0
    assert "redis_password" in result.stdout
    assert "redis_maxmemory_policy" in result.stdout
