"""Real Debian 12 hosts on this machine for the playbook tests.

A `Fleet` boots systemd-nspawn containers from a cached debootstrap tarball, each in its own
network namespace with a veth on a private bridge the fleet creates (a free `BRIDGE_SUBNETS`, never
routed anywhere: no NAT, no forwarding). Debian packages reach the hosts only through an
apt-cacher-ng bound to the bridge address, whose cache persists in the cache dir between runs.
Every outer command runs under `timeout`; everything started is stopped by pid on exit.
Each host boots in a cgroup of its own (`HostCgroup`): nspawn puts a container's units under
`<its own cgroup>/payload`, so hosts started from one cgroup would share every unit's cgroup.

Needs root and `debootstrap`, `systemd-nspawn` (systemd-container), `apt-cacher-ng`, `zstd`;
`ensure_tools()` installs the missing ones with apt-get.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

CACHE_DIR = Path(os.environ.get("ACOUSTID_TEST_CACHE_DIR", "/var/cache/acoustid-stack-tests"))
SUITE = "bookworm"
INCLUDE = "systemd,systemd-sysv,dbus,openssh-server,python3,sudo,iproute2"
# /24s a fleet may take, the first free one (two test runs on one machine each get their
# own); .1 is the bridge (apt-cacher-ng), hosts from .11.
BRIDGE_SUBNETS = tuple(f"10.203.{n}" for n in range(8))
APT_CACHE_PORT = 3142
HOST_PYTHON = "3.11.2"  # Debian 12's python3: the wheels for the hosts resolve against it
TOOLS = {
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "apt-cacher-ng": "apt-cacher-ng",
    "zstd": "zstd",
}


class HarnessError(RuntimeError):
    """The machine cannot host the test fleet; the message says why."""


def run(argv: list[str], *, timeout: float = 60, check: bool = True, **kwargs: object) -> str:
    """Run an outer command under `timeout` so a hung call fails the test, not CI."""
    result = subprocess.run(
        ["timeout", "--kill-after=5", str(int(timeout)), *argv],
        capture_output=True,
        text=True,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )
    if check and result.returncode != 0:
        raise HarnessError(
            f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()[-2000:]}"
        )
    return str(result.stdout)


def ensure_tools() -> None:
    """Install the host-building tools with apt-get when one is missing (root only)."""
    missing = [package for tool, package in TOOLS.items() if shutil.which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise HarnessError(f"needs root to install {missing}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "install", "-y", "-qq", *missing], timeout=300, env=env)


def host_mirror() -> str:
    """The Debian mirror this machine's own apt sources use (the stock backend is unreachable)."""
    sources = Path("/etc/apt")
    texts = [p.read_text() for p in sources.glob("sources.list.d/*") if p.is_file()]
    if (sources / "sources.list").is_file():
        texts.append((sources / "sources.list").read_text())
    for text in texts:
        for url in re.findall(r"(https?://\S+/debian)/?(?:\s|$)", text):
            return str(url)
    raise HarnessError("no Debian mirror found in /etc/apt/sources.list*")


def debian_image() -> Path:
    """The cached zstd tarball of a minbase Debian root; built with debootstrap (≈ 1 min) once."""
    digest = hashlib.sha256(f"{SUITE} {INCLUDE}".encode()).hexdigest()[:10]
    image = CACHE_DIR / f"debian-{SUITE}-{digest}.tar.zst"
    if image.exists():
        return image
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    build = CACHE_DIR / f"build-{os.getpid()}"
    try:
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={INCLUDE}",
                SUITE,
                str(build),
                host_mirror(),
            ],
            timeout=600,
        )
        for deb in (build / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        partial = image.with_suffix(".partial")
        run(["tar", "--zstd", "-C", str(build), "-cf", str(partial), "."], timeout=300)
        partial.rename(image)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return image


@dataclass
class Bridge:
    """A Linux bridge holding <subnet>.1/24; hosts attach veths to it.

    Traffic between two hosts is bridged, not routed, yet once `br_netfilter` is loaded (a
    Docker engine loads it, and leaves FORWARD's policy at DROP even after it stops) bridged
    frames go through iptables' FORWARD chain: host-to-host connections then time out while
    SSH from this machine still works. `create` accepts forwarding inside this bridge only.
    """

    name: str
    subnet: str = ""

    @property
    def address(self) -> str:
        return f"{self.subnet}.1"

    def claim_subnet(self) -> None:
        """Take the first of BRIDGE_SUBNETS no interface of this machine uses yet."""
        taken = run(["ip", "-4", "-o", "addr"], timeout=10)
        free = [subnet for subnet in BRIDGE_SUBNETS if f" {subnet}." not in taken]
        if not free:
            raise HarnessError(f"{', '.join(BRIDGE_SUBNETS)} are all in use here:\n{taken}")
        self.subnet = free[0]

    @property
    def _forward_rule(self) -> list[str]:
        return ["FORWARD", "-i", self.name, "-o", self.name, "-j", "ACCEPT"]

    def create(self) -> None:
        run(["ip", "link", "add", self.name, "type", "bridge"], timeout=10)
        run(["ip", "addr", "add", f"{self.address}/24", "dev", self.name], timeout=10)
        run(["ip", "link", "set", self.name, "up"], timeout=10)
        if shutil.which("iptables") is not None:
            run(["iptables", "-w", "10", "-I", *self._forward_rule], timeout=30)
        elif Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
            raise HarnessError("br_netfilter is loaded but iptables is missing to let hosts talk")

    def delete(self) -> None:
        if shutil.which("iptables") is not None:
            run(["iptables", "-w", "10", "-D", *self._forward_rule], timeout=30, check=False)
        run(["ip", "link", "del", self.name], timeout=10, check=False)


@dataclass
class AptCache:
    """apt-cacher-ng listening only on the bridge address, cache kept in CACHE_DIR.

    A fleet on the first subnet keeps the shared cache; a concurrent one on another subnet uses
    a cache of its own, so two daemons never write the same files.
    """

    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def run_dir(self) -> Path:
        # Not under the test's tmp dir: that is 0700 root and the daemon runs as its own user.
        return CACHE_DIR / f"acng-run-{os.getpid()}"

    def start(self, bridge: Bridge) -> None:
        config = self.run_dir / "conf"
        config.mkdir(parents=True, exist_ok=True)
        first = bridge.subnet == BRIDGE_SUBNETS[0]
        cache = CACHE_DIR / ("apt-cacher-ng" if first else f"apt-cacher-ng-{bridge.subnet}")
        cache.mkdir(parents=True, exist_ok=True)
        logs = self.run_dir / "log"
        logs.mkdir(exist_ok=True)
        for directory in (cache, logs):
            shutil.chown(directory, "apt-cacher-ng", "apt-cacher-ng")
        (config / "backends_debian").write_text(host_mirror() + "/\n")
        (config / "acng.conf").write_text(
            f"CacheDir: {cache}\nLogDir: {logs}\nSupportDir: /usr/lib/apt-cacher-ng\n"
            f"BindAddress: {bridge.address}\nPort: {APT_CACHE_PORT}\n"
            "Remap-debrep: file:deb_mirror*.gz /debian ; file:backends_debian\n"
            "ExThreshold: 4\nForeGround: 1\n"
        )
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            ["runuser", "-u", "apt-cacher-ng", "--", "/usr/sbin/apt-cacher-ng", "-c", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(bridge.address, APT_CACHE_PORT, timeout=15)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=10)
        shutil.rmtree(self.run_dir, ignore_errors=True)


def tracking_hierarchies() -> list[Path]:
    """This process's cgroup in each hierarchy systemd tracks units in (cgroup2, name=systemd).

    nspawn creates the container's `payload` cgroup under its own. Two hosts booted from the
    same cgroup would share `payload/system.slice/<unit>` for every unit they both run: one
    host's systemd then kills processes of, or removes the cgroup under, the other's unit
    (`status=219/CGROUP`, "did not take the steps required by its unit configuration").
    """
    own: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        own["cgroup2" if number == "0" else controllers] = path
    hierarchies = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        separator = fields.index("-")
        mount_point, fstype, options = fields[4], fields[separator + 1], fields[separator + 3]
        key = "cgroup2" if fstype == "cgroup2" else None
        if fstype == "cgroup" and "name=systemd" in options.split(","):
            key = "name=systemd"
        if key is not None and key in own:
            hierarchies.append(Path(mount_point) / own[key].lstrip("/"))
    if not hierarchies:
        raise HarnessError("no cgroup2 or name=systemd hierarchy is mounted under /sys/fs/cgroup")
    return hierarchies


@dataclass
class HostCgroup:
    """A cgroup per host in every tracking hierarchy; nspawn is moved there before it starts."""

    name: str
    paths: list[Path] = field(default_factory=list)

    def create(self) -> None:
        self.paths = [hierarchy / self.name for hierarchy in tracking_hierarchies()]
        for path in self.paths:
            path.mkdir()

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv` run by a shell that first moves itself into this cgroup (exec keeps the pid)."""
        procs = " ".join(shlex.quote(str(path / "cgroup.procs")) for path in self.paths)
        script = f'for procs in {procs}; do echo $$ > "$procs" || exit 1; done; exec "$@"'
        return ["sh", "-c", script, "sh", *argv]

    def remove(self) -> None:
        """Kill what is left in it (cgroup2's cgroup.kill), then remove it, children first."""
        for path in self.paths:
            if (path / "cgroup.kill").exists():
                (path / "cgroup.kill").write_text("1")
        deadline = time.monotonic() + 10
        while any(self._processes(path) for path in self.paths) and time.monotonic() < deadline:
            time.sleep(0.1)
        for path in self.paths:
            for directory, _, _ in os.walk(path, topdown=False):
                with contextlib.suppress(OSError):
                    os.rmdir(directory)

    @staticmethod
    def _processes(path: Path) -> bool:
        return any(
            (Path(directory) / "cgroup.procs").read_text().strip()
            for directory, _, _ in os.walk(path)
        )


@dataclass
class Host:
    """One booted Debian container, reachable over SSH as root at `address`."""

    name: str
    address: str
    root: Path
    netns: str
    veth: str
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.cgroup = HostCgroup(f"acoustid-test-{self.netns}")

    def prepare(self, image: Path, public_key: str, hosts_lines: str, proxy: str) -> None:
        self.root.mkdir(parents=True)
        run(["tar", "--zstd", "-C", str(self.root), "-xf", str(image)], timeout=120)
        etc = self.root / "etc"
        (etc / "machine-id").write_text(run(["systemd-id128", "new"], timeout=10))
        (etc / "hostname").write_text(self.name + "\n")
        (etc / "hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {self.name}\n{hosts_lines}")
        (etc / "apt/apt.conf.d/01proxy").write_text(
            f'Acquire::http::Proxy "http://{proxy}:{APT_CACHE_PORT}";\n'
        )
        # Throwaway hosts: dpkg's fsync per file only makes installs crawl on a busy disk.
        (etc / "dpkg/dpkg.cfg.d/01unsafe-io").write_text("force-unsafe-io\n")
        run(["ssh-keygen", "-A", "-f", str(self.root)], timeout=30)
        ssh_dir = self.root / "root/.ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(public_key)
        (ssh_dir / "authorized_keys").chmod(0o600)

    def plug(self, bridge: Bridge) -> None:
        run(["ip", "netns", "add", self.netns], timeout=10)
        peer = self.veth + "p"
        run(["ip", "link", "add", self.veth, "type", "veth", "peer", "name", peer], timeout=10)
        run(["ip", "link", "set", self.veth, "master", bridge.name, "up"], timeout=10)
        run(["ip", "link", "set", peer, "netns", self.netns], timeout=10)
        inside = ["ip", "netns", "exec", self.netns, "ip"]
        run([*inside, "link", "set", peer, "name", "eth0"], timeout=10)
        run([*inside, "addr", "add", f"{self.address}/24", "dev", "eth0"], timeout=10)
        run([*inside, "link", "set", "eth0", "up"], timeout=10)
        run([*inside, "link", "set", "lo", "up"], timeout=10)

    def boot(self, log_dir: Path) -> None:
        log = (log_dir / f"{self.name}.console").open("wb")
        self.cgroup.create()
        self.process = subprocess.Popen(
            self.cgroup.wrap(
                [
                    "systemd-nspawn",
                    "--boot",
                    f"--directory={self.root}",
                    f"--machine={self.name}",
                    f"--network-namespace-path=/run/netns/{self.netns}",
                    "--register=no",
                    "--keep-unit",
                    # Own network namespace, so the firewall role may load nftables rules in it.
                    "--capability=CAP_NET_ADMIN",
                    "--console=pipe",
                ]
            ),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def shutdown(self) -> None:
        # SIGTERM makes nspawn shut the container's systemd down cleanly; a throwaway host is
        # not worth waiting longer for (its services' stop timeouts reach 60 s).
        try:
            if self.process is not None:
                stop_process(self.process, timeout=10)
        finally:
            self.cgroup.remove()

    def unplug(self) -> None:
        run(["ip", "link", "del", self.veth], timeout=10, check=False)
        run(["ip", "netns", "del", self.netns], timeout=10, check=False)


@dataclass
class Fleet:
    """Bridge + apt cache + hosts; use as a context manager so teardown always runs."""

    names: list[str]
    work_dir: Path
    hosts: dict[str, Host] = field(default_factory=dict)

    def __post_init__(self) -> None:
        tag = f"{os.getpid() % 100000}"
        self.bridge = Bridge(f"acbr{tag}")
        self.bridge.claim_subnet()
        self.apt_cache = AptCache(self.work_dir / "apt-cacher-ng.log")
        self.key = self.work_dir / "id_ed25519"
        for number, name in enumerate(self.names):
            self.hosts[name] = Host(
                name=name,
                address=f"{self.bridge.subnet}.{11 + number}",
                root=self.work_dir / "roots" / name,
                netns=f"acst{tag}-{number}",
                veth=f"acv{tag}{number}",
            )

    def __enter__(self) -> Fleet:
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        ensure_tools()
        image = debian_image()
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], timeout=10)
        public_key = self.key.with_suffix(".pub").read_text()
        hosts_lines = "".join(f"{h.address} {h.name}\n" for h in self.hosts.values())
        self.bridge.create()
        self.apt_cache.start(self.bridge)
        for host in self.hosts.values():
            host.prepare(image, public_key, hosts_lines, self.bridge.address)
            host.plug(self.bridge)
            host.boot(self.work_dir)
        for host in self.hosts.values():
            wait_for_ssh(self, host, timeout=60)

    def __exit__(self, *exc: object) -> None:
        # Signal every host first so they shut down in parallel, then wait for each.
        for host in self.hosts.values():
            if host.process is not None and host.process.poll() is None:
                host.process.send_signal(signal.SIGTERM)
        for host in self.hosts.values():
            with contextlib.suppress(Exception):
                host.shutdown()
        for host in self.hosts.values():
            with contextlib.suppress(Exception):
                host.unplug()
        with contextlib.suppress(Exception):
            self.apt_cache.stop()
        self.bridge.delete()
        shutil.rmtree(self.work_dir / "roots", ignore_errors=True)

    def ssh_argv(self, host: Host) -> list[str]:
        return [
            "ssh",
            "-i",
            str(self.key),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=5",
            f"root@{host.address}",
        ]

    def ssh(self, name: str, command: str, *, timeout: float = 60, check: bool = True) -> str:
        """Run a shell command on a host as root and return its stdout."""
        return run([*self.ssh_argv(self.hosts[name]), command], timeout=timeout, check=check)

    def diagnostics(self) -> str:
        """Failed units and the end of each host's journal (without SSH and Ansible's own lines)."""
        probe = (
            "systemctl --failed --no-legend --plain; journalctl -b --no-pager -o short-precise "
            "-n 400 | grep -v -E 'sshd|pam_unix|ansible-|session-|Session |user@0|user-0' "
            "| tail -n 60"
        )
        return "".join(
            f"\n--- {name}: failed units, end of the journal\n"
            + run([*self.ssh_argv(host), probe], timeout=20, check=False)
            for name, host in self.hosts.items()
        )


def wait_for_ssh(fleet: Fleet, host: Host, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if host.process is not None and host.process.poll() is not None:
            raise HarnessError(
                f"{host.name} exited early; see {fleet.work_dir}/{host.name}.console"
            )
        probe = subprocess.run(
            ["timeout", "10", *fleet.ssh_argv(host), "true"], capture_output=True, check=False
        )
        if probe.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise HarnessError(f"{host.name} ({host.address}) never answered SSH: {probe.stderr!r}")
        time.sleep(0.5)


def wait_for_port(address: str, port: int, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise HarnessError(f"nothing listens on {address}:{port}") from None
            time.sleep(0.2)


def stop_process(process: subprocess.Popen[bytes], *, timeout: float) -> None:
    """SIGTERM, wait, then SIGKILL: the process is gone when this returns."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
