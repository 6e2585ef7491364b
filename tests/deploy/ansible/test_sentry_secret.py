"""The Sentry DSN on the Ansible face, without hosts: Ansible itself runs the acoustid role's
sentry tasks and renders acoustid.conf and the index unit from the single-host inventory; the
app's own config loader then reads the DSN from the secret file the rendered conf names."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from acoustid_stack.config import load_settings

from .local_render import run_local_playbook

pytestmark = pytest.mark.deploy

VAULT_DSN = "https://vault-key@sentry.example.org/5"
RENDER_PLAYBOOK = """
- name: Write the Sentry DSN file and render acoustid.conf and the index unit
  hosts: api
  connection: local
  gather_facts: false
  vars_files:
    - {playbooks}/roles/acoustid/defaults/main.yml
    - {playbooks}/roles/index/defaults/main.yml
  tasks:
    - name: Write the Sentry DSN file
      ansible.builtin.include_tasks: {playbooks}/roles/acoustid/tasks/sentry.yml
    - name: Render acoustid.conf
      ansible.builtin.template:
        src: {playbooks}/roles/acoustid/templates/acoustid.conf.j2
        dest: {out}/acoustid.conf
        mode: "0600"
    - name: Render the index unit
      ansible.builtin.template:
        src: {playbooks}/roles/index/templates/acoustid-index@.service.j2
        dest: {out}/acoustid-index@.service
        mode: "0600"
  handlers:
    - name: Note the restart the role would do
      ansible.builtin.debug:
        msg: restart
      listen: acoustid release changed
"""


def render(out: Path, **extra: str) -> None:
    variables = {
        "acoustid_private_address": "127.0.0.1",
        "acoustid_config_dir": str(out),
        "acoustid_user": "root",
        "vault_acoustid_database_password": "x",
        "vault_redis_password": "x",
        "vault_nats_password": "x",
        "vault_acoustid_website_secret": "x",
        **extra,
    }
    output = run_local_playbook(RENDER_PLAYBOOK, out, variables)
    assert VAULT_DSN not in output, "the DSN reached the Ansible output"


def test_the_vault_dsn_becomes_a_private_file_that_every_process_reads(tmp_path: Path) -> None:
    render(tmp_path, acoustid_sentry_dsn=VAULT_DSN, acoustid_sentry_environment="production")
    dsn_file = tmp_path / "sentry_dsn"
    assert dsn_file.read_text() == VAULT_DSN + "\n"
    assert stat.S_IMODE(dsn_file.stat().st_mode) == 0o600
    conf = (tmp_path / "acoustid.conf").read_text()
    assert f"[sentry]\ndsn_file = {dsn_file}\nenvironment = production\n" in conf
    assert VAULT_DSN not in conf
    for name in ("database_password", "redis_password", "nats_password", "website_secret"):
        (tmp_path / name).write_text("x\n")  # what the role's other secret tasks write
    settings = load_settings(path=str(tmp_path / "acoustid.conf"), environ={})
    assert (settings.sentry.dsn, settings.sentry.environment) == (VAULT_DSN, "production")
    unit = (tmp_path / "acoustid-index@.service").read_text()
    assert f"Environment=ACOUSTID_SENTRY_DSN_FILE={dsn_file}\n" in unit
    assert "Environment=ACOUSTID_SENTRY_ENVIRONMENT=production\n" in unit


def test_without_a_dsn_nothing_reports_and_an_old_file_is_removed(tmp_path: Path) -> None:
    (tmp_path / "sentry_dsn").write_text("https://old@sentry.example.org/1\n")
    render(tmp_path)
    assert not (tmp_path / "sentry_dsn").exists()
    assert "[sentry]" not in (tmp_path / "acoustid.conf").read_text()
    assert "SENTRY" not in (tmp_path / "acoustid-index@.service").read_text()
