"""Deploy the playbooks onto a `Fleet` the way a user would: an inventory, a vault, SSH.

`Deployment.write(...)` builds a test inventory from one of the repository's inventories
(its group_vars, including the generated sizing) plus a hosts file for the fleet and an
encrypted vault; `play(...)` runs a playbook under `timeout` and returns its recap.
"""

from __future__ import annotations

import email
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import acoustid
import numpy as np
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from acoustid_stack.fingerprint import encode_fingerprint

from .debian_hosts import Fleet

REPOSITORY = Path(__file__).resolve().parents[3]
PLAYBOOKS = REPOSITORY / "playbooks"
VAULT_KEYS = (
    "vault_acoustid_database_password",
    "vault_postgresql_replication_password",
    "vault_redis_password",
    "vault_nats_password",
    "vault_acoustid_website_secret",
)
RECAP = re.compile(
    r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M
)


@dataclass(frozen=True)
class Recap:
    """A playbook run: exit status, output, seconds, and changed= per host."""

    returncode: int
    output: str
    seconds: float
    changed: dict[str, int]

    def summary(self) -> str:
        return self.output[-12000:]


def build_wheels(out: Path, host_python: str) -> tuple[Path, Path]:
    """(the app's wheel, a tar of its dependencies' wheels) for hosts running `host_python`.

    The hosts have no index to install from. Dependencies resolve here, on this machine's
    Python; requirements whose markers hold only on the hosts' (e.g. `python_full_version <
    "3.11.3"` on Debian 12's 3.11.2) are then added one level at a time.
    """
    dist, wheelhouse = out / "dist", out / "wheelhouse"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _quiet([*pip, "wheel", "-q", "--no-deps", "-w", str(dist), str(REPOSITORY)])
    wheel = next(dist.glob("acoustid_stack-*.whl"))
    _quiet([*pip, "wheel", "-q", "-w", str(wheelhouse), str(wheel)])
    (wheelhouse / wheel.name).unlink()
    environment = {"python_full_version": host_python, "python_version": host_python[:4]}
    for _ in range(5):
        missing = _unmet_requirements([wheel, *wheelhouse.glob("*.whl")], environment)
        if not missing:
            archive = out / "wheelhouse.tar"
            names = sorted(p.name for p in wheelhouse.iterdir())
            _quiet(["tar", "-cf", str(archive), "-C", str(wheelhouse), *names])
            return wheel, archive
        _quiet([*pip, "download", "-q", "--no-deps", "-d", str(wheelhouse), *missing])
    raise RuntimeError(f"dependencies for Python {host_python} did not converge")


def _quiet(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=600)


def _unmet_requirements(wheels: list[Path], environment: dict[str, str]) -> list[str]:
    have = {canonicalize_name(w.name.split("-")[0]) for w in wheels}
    missing = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            metadata = email.message_from_bytes(archive.read(name))
        for line in metadata.get_all("Requires-Dist") or []:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate(
                {**environment, "extra": ""}
            ):
                continue
            if canonicalize_name(requirement.name) not in have:
                missing.append(f"{requirement.name}{requirement.specifier}")
    return sorted(set(missing))


@dataclass
class Deployment:
    """An inventory for `fleet` under `directory`, and the commands to play it."""

    fleet: Fleet
    directory: Path

    @property
    def inventory(self) -> Path:
        return self.directory / "inventory"

    def write(
        self,
        *,
        base: str,
        groups: dict[str, list[str]],
        wheel: Path,
        wheelhouse: Path,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        """Copy inventories/<base>/group_vars, then hosts.yml, vault.yml and the test's vars."""
        shutil.copytree(
            PLAYBOOKS / "inventories" / base / "group_vars", self.inventory / "group_vars"
        )
        hosts = {
            name: {"ansible_host": host.address, "ansible_user": "root"}
            for name, host in self.fleet.hosts.items()
        }
        children = {group: {"hosts": dict.fromkeys(members)} for group, members in groups.items()}
        (self.inventory / "hosts.yml").write_text(
            yaml.safe_dump({"all": {"hosts": hosts, "children": children}})
        )
        extra = {
            "acoustid_wheel": str(wheel),
            "acoustid_wheelhouse": str(wheelhouse),
            "ansible_ssh_private_key_file": str(self.fleet.key),
            "ansible_ssh_common_args": (
                "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
            ),
            **(overrides or {}),
        }
        # Loaded after sizing.yml (alphabetical order), so the test's values win.
        (self.inventory / "group_vars/all/zz_test.yml").write_text(yaml.safe_dump(extra))
        self.vault_password = self.directory / "vault-password"
        self.vault_password.write_text(secrets.token_hex(16))
        vault = self.inventory / "group_vars/all/vault.yml"
        self.secrets = {key: secrets.token_hex(12) for key in VAULT_KEYS}
        vault.write_text(yaml.safe_dump(self.secrets))
        subprocess.run(
            [
                "ansible-vault",
                "encrypt",
                "--vault-password-file",
                str(self.vault_password),
                str(vault),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def play(self, playbook: str, *extra: str, timeout: float = 900) -> Recap:
        """Run playbooks/<playbook> against this inventory; never raises on failure."""
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(PLAYBOOKS / "ansible.cfg"),
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCAL_TEMP": str(self.directory / "ansible-tmp"),
            # Per-task durations in the log: where a slow CI run spent its time.
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
        }
        argv = [
            "ansible-playbook",
            "-i",
            str(self.inventory),
            "--vault-password-file",
            str(self.vault_password),
            str(PLAYBOOKS / playbook),
            *extra,
        ]
        start = time.monotonic()
        result = subprocess.run(
            ["timeout", "--kill-after=10", str(int(timeout)), *argv],
            capture_output=True,
            text=True,
            env=env,
            cwd=PLAYBOOKS,
            check=False,
        )
        output = result.stdout + result.stderr
        if result.returncode != 0:
            output += self.fleet.diagnostics()
        (self.directory / f"{playbook}.{int(start)}.log").write_text(output)
        changed = {m.group(1): int(m.group(3)) for m in RECAP.finditer(result.stdout)}
        return Recap(result.returncode, output, time.monotonic() - start, changed)


def create_api_keys(fleet: Fleet, primary: str) -> tuple[str, str]:
    """(client key, user key) of a new application, written on the PostgreSQL primary."""
    client_key, user_key = secrets.token_hex(5), secrets.token_hex(5)
    sql = (
        "WITH a AS (INSERT INTO account (name, apikey) "
        f"VALUES ('deploy test', '{user_key}') RETURNING id) "
        "INSERT INTO application (name, version, apikey, account_id) "
        f"SELECT 'deploy test', '1', '{client_key}', id FROM a"
    )
    fleet.ssh(primary, f'runuser -u postgres -- psql -XAtq -d acoustid_app -c "{sql}"')
    return client_key, user_key


def random_fingerprint(seed: int) -> str:
    """A compressed fingerprint of 1000 random hashes (the import needs 80 distinct)."""
    hashes = np.random.default_rng(seed).integers(0, 2**32, size=1000, dtype=np.uint32)
    return encode_fingerprint(hashes)


def wait_for_lookup(
    api_url: str, client_key: str, fingerprint: str, duration: int, *, seconds: float
) -> list[tuple[float, str, str | None, str | None]]:
    """pyacoustid lookups (1 per second, under the api's rate limit) until one matches."""
    acoustid.API_BASE_URL = f"{api_url}/v2/"
    deadline = time.monotonic() + seconds
    while True:
        response = acoustid.lookup(client_key, fingerprint, duration)
        matches = list(acoustid.parse_lookup_result(response))
        if matches or time.monotonic() > deadline:
            return matches
        time.sleep(1)


def http_status(fleet: Fleet, host: str, url: str) -> str:
    """The HTTP status of GET url, fetched on `host` (the firewall admits only inventory hosts)."""
    return fleet.ssh(
        host, f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 5 {url}", check=False
    )
