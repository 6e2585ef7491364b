"""The playbooks without hosts: lint, syntax, argument specs, generated sizing, shard layout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from acoustid_stack import sizing
from acoustid_stack.sizing_commands import render_export

from .deployment import PLAYBOOKS

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


@pytest.mark.parametrize("playbook", PLAYBOOK_FILES)
@pytest.mark.parametrize("inventory", sorted(INVENTORY_PROFILES))
def test_playbook_passes_syntax_check(playbook: str, inventory: str, tmp_path: Path) -> None:
    result = ansible(
        ["ansible-playbook", "--syntax-check", "-i", f"inventories/{inventory}", playbook], tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr


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
