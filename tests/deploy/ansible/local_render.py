"""Ansible run on this machine, without hosts: a small playbook that includes the roles' real
tasks and templates against the single-host inventory, so what they render can be checked and
used by real servers and the app's own config loader."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .deployment import PLAYBOOKS


def run_local_playbook(playbook: str, out: Path, variables: dict[str, str]) -> str:
    """Runs `playbook` (its text may name {playbooks} and {out}) with `variables` as extra
    vars; returns Ansible's output, or fails the test with it."""
    path = out / "render.yml"
    path.write_text(playbook.format(playbooks=PLAYBOOKS, out=out))
    argv = ["ansible-playbook", "-i", "inventories/single/hosts.yml", str(path)]
    for key, value in variables.items():
        argv += ["-e", f"{key}={value}"]
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(PLAYBOOKS / "ansible.cfg"),
        "ANSIBLE_FILTER_PLUGINS": str(PLAYBOOKS / "filter_plugins"),
        # templates render on this machine: its Python, not the hosts' /usr/bin/python3
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_LOCAL_TEMP": str(out / "ansible-tmp"),
        "ANSIBLE_HOME": str(out / "ansible-home"),
        "ANSIBLE_NOCOLOR": "1",
    }
    result = subprocess.run(
        argv, cwd=PLAYBOOKS, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr
