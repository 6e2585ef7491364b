"""Every service of docker-compose.yml is wired to something real: commands the CLI knows,
secrets that are declared and used, healthcheck paths the apps serve, pinned images."""

from __future__ import annotations

import configparser
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from starlette.applications import Starlette

from acoustid_stack.cli import cli

from .conftest import DOCKER_DIR, OUR_IMAGES, image_repository

pytestmark = pytest.mark.deploy

CONFIG_TARGET = "/etc/acoustid/acoustid.conf"
# The operator shell runs whatever the operator types, and backup-index streams the index
# snapshot with Python (tested in test_compose_scripts); every other service of our images
# runs an `acoustid-stack` command.
NOT_CLI = {"shell", "backup-index"}


def resolve_command(args: list[str]) -> click.Context:
    """Parse `acoustid-stack ARGS` down to the leaf command without running it.

    The root's own options are not parsed: compose commands use none.
    """
    ctx = click.Context(cli, info_name="acoustid-stack")
    command: click.Command = cli
    rest = list(args)
    while isinstance(command, click.Group):
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None
        assert name is not None
        if not isinstance(sub, click.Group):
            return sub.make_context(name, rest, parent=ctx)
        ctx = click.Context(sub, info_name=name, parent=ctx)
        command = sub
    return ctx


def our_services(resolved: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, service in resolved["services"].items():
        if image_repository(service["image"]) in OUR_IMAGES:
            yield name, service


def leaf(args: list[str]) -> tuple[str, ...]:
    return tuple(word for word in args[1:] if not word.startswith("-"))[:2]


def test_services_of_our_images_run_acoustid_stack_commands_the_cli_accepts(
    resolved: dict[str, Any],
) -> None:
    checked = []
    for name, service in our_services(resolved):
        command = service["command"]
        if name in NOT_CLI:
            continue
        assert command[0] == "acoustid-stack", f"{name}: {command}"
        try:
            resolve_command(command[1:])
        except click.UsageError as exc:
            pytest.fail(f"{name}: `{' '.join(command)}` is not a valid command: {exc}")
        checked.append(name)
    assert {"migrate", "index", "api", "web", "worker", "cron"} <= set(checked)


def test_an_unknown_command_fails_to_resolve() -> None:
    with pytest.raises(click.UsageError):
        resolve_command(["run", "index", "--no-such-option"])
    with pytest.raises(click.UsageError):
        resolve_command(["run", "nothing"])


def test_every_secret_is_declared_and_every_declared_secret_is_used(
    compose: dict[str, Any],
) -> None:
    declared = set(compose["secrets"])
    used = {
        secret if isinstance(secret, str) else secret["source"]
        for service in compose["services"].values()
        for secret in service.get("secrets", [])
    }
    assert used == declared
    for name, secret in compose["secrets"].items():
        assert secret["file"] == f"./docker/secrets/{name}"


def test_every_secret_the_config_reads_is_mounted_where_the_config_is(
    resolved: dict[str, Any],
) -> None:
    config = configparser.ConfigParser(interpolation=None)
    config.read(DOCKER_DIR / "acoustid.conf")
    paths = {
        value
        for section in config.values()
        for key, value in section.items()
        if key.endswith("_file")
    }
    assert paths, "docker/acoustid.conf reads no secret file"
    for name, service in our_services(resolved):
        targets = {c["target"] for c in service.get("configs", [])}
        if CONFIG_TARGET not in targets:
            continue
        mounted = {s["target"] for s in service.get("secrets", [])}
        assert paths <= mounted, f"{name} lacks {sorted(paths - mounted)}"
        assert service["environment"]["ACOUSTID_CONFIG"] == CONFIG_TARGET


def test_depends_on_conditions_name_services_that_can_satisfy_them(
    resolved: dict[str, Any],
) -> None:
    services = resolved["services"]
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            target = services[dependency]
            if spec["condition"] == "service_healthy":
                check = target.get("healthcheck", {})
                unchecked = f"{name} waits for {dependency} to be healthy, which has no healthcheck"
                assert check.get("test"), unchecked
                assert not check.get("disable"), unchecked
            elif spec["condition"] == "service_completed_successfully":
                assert target.get("restart", "no") == "no", f"{dependency} is not a one-shot"
            else:
                pytest.fail(f"{name} -> {dependency}: unconditional start order")


def test_the_application_waits_for_migrations(resolved: dict[str, Any]) -> None:
    for name in ("api", "web", "worker", "cron"):
        condition = resolved["services"][name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name


def test_no_image_is_unpinned_or_latest(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        image = service["image"]
        tag = image[len(image_repository(image)) + 1 :]
        assert tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"


def test_our_images_are_built_from_our_dockerfiles(resolved: dict[str, Any]) -> None:
    for name, service in our_services(resolved):
        dockerfile = OUR_IMAGES[image_repository(service["image"])]
        build = service["build"]
        assert Path(build["context"]) == DOCKER_DIR.parent, name
        assert build["dockerfile"] == f"docker/{dockerfile}", name


# ---- healthcheck paths --------------------------------------------------------------

URL = re.compile(r"http://127\.0\.0\.1:(\d+)(/[^\s\"'?]*)")


def index_routes(tmp_path: Path) -> Starlette:
    from acoustid_stack.index.server import create_app

    return create_app(tmp_path)


def api_routes(tmp_path: Path) -> Starlette:
    from acoustid_stack.api.app import create_app
    from acoustid_stack.config import load_settings

    return create_app(load_settings(path=None, environ={}))


def web_routes(tmp_path: Path) -> Starlette:
    from acoustid_stack.config import load_settings
    from acoustid_stack.web.app import create_app

    return create_app(load_settings(path=None, environ={}))


# compose service -> (its port, the app it runs)
APPS: dict[str, tuple[int, Callable[[Path], Starlette]]] = {
    "index": (6081, index_routes),
    "api": (5000, api_routes),
    "web": (5001, web_routes),
}


def healthcheck_url(service: dict[str, Any]) -> tuple[int, str]:
    test = " ".join(service["healthcheck"]["test"])
    found = URL.search(test)
    assert found, test
    return int(found.group(1)), found.group(2)


@pytest.mark.parametrize("name", sorted(APPS))
def test_healthcheck_path_is_served_by_the_app(
    name: str, resolved: dict[str, Any], tmp_path: Path
) -> None:
    port, path = healthcheck_url(resolved["services"][name])
    expected_port, make_app = APPS[name]
    assert port == expected_port
    app = make_app(tmp_path)
    literal_paths = {getattr(route, "path", None) for route in app.routes}
    assert path in literal_paths, f"{name} serves no {path}"


def test_every_http_service_has_its_healthcheck_checked(resolved: dict[str, Any]) -> None:
    probed = {
        name
        for name, service in our_services(resolved)
        if "acoustid-healthcheck" in service.get("healthcheck", {}).get("test", [])
    }
    assert probed == set(APPS) | set(LOOP_SERVICES)


# Services without an HTTP app: /_health on the metrics port their command opens.
LOOP_SERVICES = ("worker", "cron")


@pytest.mark.parametrize("name", LOOP_SERVICES)
def test_loop_services_are_probed_on_their_metrics_port(
    name: str, resolved: dict[str, Any]
) -> None:
    """`up --wait` refuses a service whose healthcheck is disabled (issue 16)."""
    service = resolved["services"][name]
    command = service["command"]
    port = int(command[command.index("--metrics-port") + 1])
    assert healthcheck_url(service) == (port, "/_health")


def test_api_is_probed_on_its_liveness_endpoint(resolved: dict[str, Any]) -> None:
    assert healthcheck_url(resolved["services"]["api"]) == (5000, "/_health_docker")
    assert healthcheck_url(resolved["services"]["web"]) == (5001, "/_health")
