"""NATS authentication on the Ansible face, without hosts: Ansible itself renders the nats role's
nats-server.conf and the acoustid role's acoustid.conf from the single-host inventory, a real
nats-server runs the rendered file on loopback, and the app, configured by the rendered
acoustid.conf and its password file, gets in where a client without credentials does not."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest

from acoustid_stack.config import load_settings
from acoustid_stack.local.binaries import require_binary
from acoustid_stack.local.process import free_port
from acoustid_stack.submissions.connection import Reconnect, connect_nats

from .local_render import run_local_playbook

pytestmark = pytest.mark.deploy

VAULT_NATS_PASSWORD = "nats-vault-password"
# Secret files the rendered acoustid.conf names; only the NATS one matters here.
SECRET_FILES = ("database_password", "redis_password", "nats_password", "website_secret")
RENDER_PLAYBOOK = """
- name: Render the nats role's server configuration and the acoustid role's acoustid.conf
  hosts: nats
  connection: local
  gather_facts: false
  vars_files:
    - {playbooks}/roles/nats/defaults/main.yml
    - {playbooks}/roles/acoustid/defaults/main.yml
  tasks:
    - name: Render nats-server.conf
      ansible.builtin.template:
        src: {playbooks}/roles/nats/templates/nats-server.conf.j2
        dest: {out}/nats-server.conf
        mode: "0600"
    - name: Render acoustid.conf
      ansible.builtin.template:
        src: {playbooks}/roles/acoustid/templates/acoustid.conf.j2
        dest: {out}/acoustid.conf
        mode: "0600"
"""


@dataclass(frozen=True)
class Rendered:
    folder: Path
    nats_url: str


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    out = tmp_path_factory.mktemp("nats-auth")
    port = free_port()
    extra = {
        "vault_nats_password": VAULT_NATS_PASSWORD,
        "acoustid_private_address": "127.0.0.1",
        "nats_port": str(port),
        "nats_monitor_port": str(free_port()),
        "nats_store_dir": str(out / "jetstream"),
        "acoustid_config_dir": str(out),
    }
    run_local_playbook(RENDER_PLAYBOOK, out, extra)
    # What the acoustid role's config tasks write next to acoustid.conf.
    for name in SECRET_FILES:
        value = VAULT_NATS_PASSWORD if name == "nats_password" else f"{name}-value"
        (out / name).write_text(f"{value}\n")
    return Rendered(folder=out, nats_url=f"nats://127.0.0.1:{port}")


@pytest.fixture(scope="module")
def nats_server(rendered: Rendered) -> Iterator[str]:
    """nats-server running the rendered configuration (on loopback, whatever it says)."""
    process = subprocess.Popen(
        [
            str(require_binary("nats-server")),
            "-c",
            str(rendered.folder / "nats-server.conf"),
            "-a",
            "127.0.0.1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        port = int(rendered.nats_url.rsplit(":", 1)[1])
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nats-server did not listen within 10 s"
                time.sleep(0.05)
        yield rendered.nats_url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_rendered_server_configuration_requires_a_password(rendered: Rendered) -> None:
    conf = (rendered.folder / "nats-server.conf").read_text()
    assert "authorization {" in conf
    assert f'password: "{VAULT_NATS_PASSWORD}"' in conf


def test_a_client_without_credentials_is_refused(nats_server: str) -> None:
    async def attempt() -> None:
        client = await nats.connect(
            nats_server, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2
        )
        await client.close()

    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        asyncio.run(attempt())


def test_the_app_connects_with_the_rendered_acoustid_conf(
    rendered: Rendered, nats_server: str
) -> None:
    settings = load_settings(str(rendered.folder / "acoustid.conf"), environ={})
    assert settings.nats.servers == [nats_server]
    assert settings.nats.user == "acoustid"
    assert settings.nats.password == VAULT_NATS_PASSWORD

    async def round_trip() -> bytes:
        client = await connect_nats(settings.nats, reconnect=Reconnect.FAIL_FAST)
        try:
            subscription = await client.subscribe("auth.check")
            await client.publish("auth.check", b"ok")
            message = await subscription.next_msg(timeout=2)
            return bytes(message.data)
        finally:
            await client.close()

    assert asyncio.run(round_trip()) == b"ok"
