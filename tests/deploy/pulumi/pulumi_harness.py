"""Run the Pulumi program under ``pulumi.runtime.set_mocks`` and record what it registers.

No Pulumi CLI or cluster exists here: every resource is recorded with its inputs (Helm releases
are opaque, so their inputs are what we check), its URN (which carries the parent's type) and
whether each input value was marked secret.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs

REPO = Path(__file__).resolve().parents[3]
INFRA = REPO / "infra"
CRD_DIR = REPO.parent / "shared" / "crds"
PROJECT = "acoustid-stack"
if str(INFRA) not in sys.path:
    # Pulumi runs infra/__main__.py with infra/ on sys.path; the tests import it the same way.
    sys.path.insert(0, str(INFRA))

# Pulumi's wire format for a secret value: {SIG_KEY: SECRET_SIG, "value": ...}.
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"

RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
CNPG_CLUSTER = "kubernetes:postgresql.cnpg.io/v1:Cluster"
CNPG_SCHEDULED_BACKUP = "kubernetes:postgresql.cnpg.io/v1:ScheduledBackup"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
OBJECT_STORE = "kubernetes:barmancloud.cnpg.io/v1:ObjectStore"
GENERATED_PREFIX = "generated-password-of-"


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG


def unwrap(value: Any) -> Any:
    """``value`` with every secret marker removed (the plain data a provider would see)."""
    if is_secret(value):
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {key: unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    return value


def plain_strings(value: Any) -> Iterator[str]:
    """Every string in ``value`` that is NOT under a secret marker."""
    if is_secret(value):
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from plain_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from plain_strings(item)


@dataclass(frozen=True)
class Registered:
    type: str
    name: str
    urn: str
    raw_inputs: dict[str, Any]
    # URNs of the resources it waits for (depends_on on a component expands to its children).
    dependencies: tuple[str, ...] = ()

    @property
    def inputs(self) -> dict[str, Any]:
        result: dict[str, Any] = unwrap(self.raw_inputs)
        return result

    @property
    def parent_type(self) -> str | None:
        """Type of the parent resource (None for a resource directly under the stack)."""
        types = self.urn.split("::")[2].split("$")
        return types[-2] if len(types) > 1 else None

    @property
    def values(self) -> dict[str, Any]:
        """A Helm release's values."""
        values: dict[str, Any] = self.inputs["values"]
        return values

    def manifest(self) -> dict[str, Any]:
        """A custom resource as it would be applied: apiVersion, kind, metadata, spec."""
        inputs = self.inputs
        return {key: inputs[key] for key in ("apiVersion", "kind", "metadata", "spec")}


@dataclass
class Deployment:
    resources: list[Registered]
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str) -> Registered:
        found = self.of_type(type_)
        assert len(found) == 1, f"expected one {type_}, found {[r.name for r in found]}"
        return found[0]

    def release(self, chart_name: str) -> Registered:
        """The Helm release of ``chart_name`` (a repository chart name or our chart's folder)."""
        found = [r for r in self.of_type(RELEASE) if r.inputs["chart"].endswith(chart_name)]
        assert len(found) == 1, f"expected one release of {chart_name}, found {len(found)}"
        return found[0]


class RecordingMocks(pulumi.runtime.Mocks):
    """Echo inputs as outputs; a RandomPassword 'generates' a recognisable value."""

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        if args.typ == RANDOM_PASSWORD:
            state["result"] = f"{GENERATED_PREFIX}{args.name}"
        return f"{args.name}-id", state

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


class RecordingMonitor(MockMonitor):
    """The mock monitor, also recording each registration's dependencies."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.dependencies: dict[str, tuple[str, ...]] = {}

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        self.dependencies[response.urn] = tuple(request.dependencies)
        return response


def run_program(
    build: Callable[[], dict[str, Any]],
    *,
    config: dict[str, str] | None = None,
    secret_keys: list[str] | None = None,
) -> Deployment:
    """Run ``build`` (which creates resources and returns the outputs to export) under mocks,
    with ``config`` as the stack configuration (``secret_keys`` of it marked secret)."""
    # Pulumi's runtime drives its own event loop; earlier tests (asyncio.run) may have left none.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return _run(build, config=config, secret_keys=secret_keys)
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def _run(
    build: Callable[[], dict[str, Any]],
    *,
    config: dict[str, str] | None,
    secret_keys: list[str] | None,
) -> Deployment:
    mocks = RecordingMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_all_config(config or {}, secret_keys)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack="test", preview=False, monitor=monitor)
    captured: dict[str, tuple[Any, bool]] = {}

    async def collect(outputs: dict[str, Any]) -> None:
        for name, value in outputs.items():
            output = pulumi.Output.from_input(value)
            captured[name] = (await output.future(), await output.is_secret())

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> pulumi.Output[None]:
        return pulumi.Output.from_input(collect(build()))

    program()
    resources = [
        Registered(
            type=urn.split("::")[2].split("$")[-1],
            name=urn.split("::")[-1],
            urn=urn,
            raw_inputs=dict(registration.state or {}),
            dependencies=monitor.dependencies.get(urn, ()),
        )
        for urn, registration in monitor.get_registered_resources().items()
    ]
    return Deployment(
        resources=resources,
        outputs={name: value for name, (value, _) in captured.items()},
        secret_outputs={name for name, (_, secret) in captured.items() if secret},
    )


# --------------------------------------------------------------------------- the stack

from acoustid_stack.sizing import load_sizing  # noqa: E402 -- needs infra/ on sys.path first
from components.database import BackupArgs  # noqa: E402
from components.stack import AcoustidStack, AcoustidStackArgs  # noqa: E402

PROFILES = ("minimum", "production")
BACKUP = BackupArgs(
    destination_path="s3://acoustid-backups/test",
    endpoint_url="https://objects.example.org",
    access_key_id="test-access-key-id",
    secret_access_key="test-secret-access-key",
)


def stack_args(profile: str, **changes: Any) -> AcoustidStackArgs:
    """The stack for ``profile`` with test backups, plus ``changes``."""
    args = AcoustidStackArgs(profile=load_sizing().profile(profile), backup=BACKUP)
    return replace(args, **changes)


def deploy_stack(args: AcoustidStackArgs) -> Deployment:
    return run_program(lambda: AcoustidStack("acoustid", args).outputs)
