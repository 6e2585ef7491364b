"""The drill scenarios: each injects one fault and follows its runbook (runbooks/<name>.md).

A step is either an operator command — a shell line, exactly as the runbook prints it, run
with DATA_DIR (and TARGET_TIME) set — or a process start/stop, which on hosts is systemd's
job and here the drill's. tests/unit/ops checks that every command is in its runbook.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from acoustid_stack.errors import UserError
from acoustid_stack.index.client import HashRing
from acoustid_stack.ops.drills.report import DrillReport, StepRecord
from acoustid_stack.ops.drills.stack import (
    APP_SERVICES,
    INDEX_SERVICES,
    NATS_SERVICES,
    WORKER_SERVICES,
    DrillStack,
    ServerSet,
)
from acoustid_stack.ops.drills.traffic import Ack, Traffic, Writer, submit

CLI = "acoustid-stack"
BACKUP_ALL = f'{CLI} backup run --data-dir "$DATA_DIR"'
CHECK = f'{CLI} restore check --data-dir "$DATA_DIR"'
FAILOVER = f'{CLI} restore failover --data-dir "$DATA_DIR"'
NEW_FULL_BACKUP = f'{CLI} backup run --data-dir "$DATA_DIR" --what postgresql --type full'
RESTORE_PG = f'{CLI} restore postgresql --data-dir "$DATA_DIR"'
RESTORE_PG_TIME = f'{CLI} restore postgresql --data-dir "$DATA_DIR" --time "$TARGET_TIME"'
FINISH_PG = f'{CLI} restore finish --data-dir "$DATA_DIR"'
RESTORE_REDIS = f'{CLI} restore redis --data-dir "$DATA_DIR"'
RESTORE_NATS = f'{CLI} restore nats --data-dir "$DATA_DIR"'
CATCH_UP_ALL = f'{CLI} restore index-catch-up --data-dir "$DATA_DIR"'
CATCH_UP_2 = f'{CLI} restore index-catch-up --data-dir "$DATA_DIR" --shard index-2'


def restore_shard(name: str) -> str:
    return (
        f'{CLI} index restore "$({CLI} backup latest {name} --data-dir "$DATA_DIR")" '
        f'--dir "$DATA_DIR/{name}" --force'
    )


RATE = 5.0  # submissions per second
LOAD_SECONDS = 4.0
IMPORT_TIMEOUT = 120.0
LOOKUP_BATCH = 10


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    run: Callable[[Drill], None]
    commands: tuple[str, ...]


class Drill:
    """One drill on one stack: load, fault, runbook steps, verification, report."""

    def __init__(
        self, scenario: Scenario, stack: DrillStack, *, echo: Callable[[str], None]
    ) -> None:
        self.scenario = scenario
        self.stack = stack
        self.echo = echo
        self.report = DrillReport(scenario.name, started=time.time())
        self.env = {**os.environ, "DATA_DIR": str(stack.root)}
        self.writer: Writer | None = None
        # acknowledged and imported before the backups: in every shard's snapshot
        self.backed_up: list[Ack] = []

    # ---- steps -------------------------------------------------------------------------

    def command(self, line: str) -> str:
        """Run an operator command exactly as the runbook prints it; its output."""
        if line not in self.scenario.commands:
            raise AssertionError(f"{line!r} is not among {self.scenario.name}'s runbook commands")
        started = time.time()
        self.echo(f"  $ {line}")
        # `acoustid-stack` is this interpreter's console script, even without an activated venv
        bin_dir = str(Path(sys.executable).parent)
        env = {**self.env, "PATH": f"{bin_dir}:{self.env.get('PATH', '')}"}
        result = subprocess.run(
            ["bash", "-c", line], capture_output=True, text=True, env=env, timeout=600, check=False
        )
        output = (result.stdout + result.stderr).strip()
        self.report.steps.append(
            StepRecord(
                line.split(" --data-dir", maxsplit=1)[0],
                line,
                started,
                time.time() - started,
                output,
            )
        )
        if result.returncode != 0:
            raise UserError(f"drill step failed: {line}\n{output}")
        return output

    def service(self, title: str, action: Callable[[], None]) -> None:
        started = time.time()
        self.echo(f"  [service manager] {title}")
        action()
        self.report.steps.append(StepRecord(title, None, started, time.time() - started))

    def fault(self, title: str, action: Callable[[], None]) -> None:
        self.echo(f"  !! fault: {title}")
        self.report.fault_at = time.time()
        action()
        self.report.notes.append(f"fault: {title}")

    # ---- the frame around a scenario ----------------------------------------------------

    def prepare(self) -> None:
        """Start the stack, put load on it, take the daily backups, keep writing."""
        self.echo(f"drill {self.scenario.name}: starting the stack in {self.stack.root}")
        self.stack.start()
        self.writer = Writer(
            api_url=self.stack.api_url,
            client_key=self.stack.client_key,
            user_key=self.stack.user_key,
            rate=RATE,
        )
        self.writer.start()
        time.sleep(LOAD_SECONDS)
        imported = self.writer.traffic.acks[:]
        if not self.wait_imported(imported):
            self.backed_up = imported
        self.setup_command(BACKUP_ALL)
        time.sleep(LOAD_SECONDS / 2)

    def setup_command(self, line: str) -> None:
        result = subprocess.run(
            ["bash", "-c", line],
            capture_output=True,
            text=True,
            env={**self.env, "PATH": f"{Path(sys.executable).parent}:{self.env.get('PATH', '')}"},
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            raise UserError(f"drill setup failed: {line}\n{result.stdout}{result.stderr}")

    def healthy(self) -> None:
        """Recovered: the runbook's check passes and a lookup answers again."""
        self.command(CHECK)
        probe = self.writer.traffic.acks[0] if self.writer and self.writer.traffic.acks else None
        deadline = time.monotonic() + 60
        while probe is not None and not self._found([probe])[0]:
            if time.monotonic() > deadline:
                raise UserError("drill: lookups do not find data again after recovery")
            time.sleep(0.2)
        self.report.healthy_at = time.time()

    def verify(self) -> Traffic:
        """Stop writing, then compare what was acknowledged with what the stack holds."""
        time.sleep(2)
        assert self.writer is not None
        traffic = self.writer.stop()
        acks = traffic.acks
        self.report.acknowledged = len(acks)
        settings = self.stack.settings
        with psycopg.connect(settings.database.get("ingest").conninfo()) as conn:
            present = {
                int(r[0])
                for r in conn.execute(
                    "SELECT id FROM submission WHERE id = ANY(%s)", ([a.id for a in acks],)
                )
            }
        lost = [a for a in acks if a.id not in present]
        self.report.lost_ids = [a.id for a in lost]
        if lost:
            self.report.lost_window = max(0.0, self.report.fault_at - min(a.at for a in lost))
        kept = [a for a in acks if a.id in present]
        self.wait_imported(kept)
        unsearchable = []
        for start in range(0, len(kept), LOOKUP_BATCH):
            batch = kept[start : start + LOOKUP_BATCH]
            unsearchable += [
                a.id for a, ok in zip(batch, self._found(batch), strict=True) if not ok
            ]
        self.report.unsearchable_ids = unsearchable
        self.report.notes += [
            f"service manager restarted {name} at +{at - self.report.started:.1f} s"
            for at, name in self.stack.restarts
        ]
        return traffic

    def wait_imported(self, acks: list[Ack]) -> int:
        """Until every one of `acks` is imported; how many are still pending (0: all)."""
        ids = [a.id for a in acks]
        settings = self.stack.settings
        deadline = time.monotonic() + IMPORT_TIMEOUT
        while ids:
            with psycopg.connect(settings.database.get("ingest").conninfo()) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pending_submission WHERE id = ANY(%s)", (ids,)
                ).fetchone()
            if row is None or row[0] == 0:
                return 0
            if time.monotonic() > deadline:
                self.report.notes.append(
                    f"{row[0]} submissions still pending after {IMPORT_TIMEOUT:.0f} s"
                )
                return int(row[0])
            time.sleep(0.3)
        return 0

    def imported_without_restarts(self, pids: dict[str, int | None], *, since: float) -> None:
        """Submissions acknowledged after `since` get imported while every service in `pids`
        is still the process it was before the fault: nothing had to be restarted."""
        assert self.writer is not None
        writer = self.writer
        deadline = time.monotonic() + IMPORT_TIMEOUT
        while not (fresh := [a for a in writer.traffic.acks[:] if a.at > since]):
            if time.monotonic() > deadline:
                raise UserError("drill: no submission was acknowledged after the recovery")
            time.sleep(0.2)
        if self.wait_imported(fresh):
            raise UserError("drill: submissions acknowledged after the recovery stay pending")
        now = self.stack.pids(pids)
        if now != pids:
            raise UserError(f"drill: processes were restarted (pids before {pids}, now {now})")
        self.report.notes.append(
            f"{len(fresh)} submissions acknowledged after the recovery imported by the same "
            f"processes ({', '.join(f'{n} pid {p}' for n, p in pids.items())})"
        )

    def rebound_in_place(self, workers: tuple[str, ...]) -> None:
        """At least one of `workers` found its consumer gone and created it again in place
        (the others may find it already re-created and just pull on)."""
        rebound = [
            name
            for name in workers
            if "; creating them again" in (self.stack.files.logs / f"{name}.log").read_text()
        ]
        if not rebound:
            raise UserError("drill: no worker re-created the lost consumer in place")
        self.report.notes.append(f"re-created the consumer in place: {', '.join(rebound)}")

    def resubmit(self, acks: list[Ack]) -> list[Ack]:
        """Submit the songs of `acks` again (the same fingerprints); the new acknowledgements."""
        with httpx.Client(base_url=self.stack.api_url, timeout=10) as http:
            return [
                Ack(
                    submit(http, self.stack.client_key, self.stack.user_key, a.fingerprint),
                    time.time(),
                    a.fingerprint,
                )
                for a in acks
            ]

    def one_track_per_song(self, acks: list[Ack], *, shard: str) -> None:
        """Once imported, all submissions of a song among `acks` are on one track: an import
        planned on a search that left a shard out gives a song submitted again a second one."""
        if self.wait_imported(acks):
            raise UserError("drill: songs submitted again during the fault stay pending")
        settings = self.stack.settings
        with psycopg.connect(settings.database.get("ingest").conninfo()) as conn:
            results = {
                int(r[0]): (int(r[1]), int(r[2]))
                for r in conn.execute(
                    "SELECT submission_id, track_id, fingerprint_id FROM submission_result "
                    "WHERE submission_id = ANY(%s)",
                    ([a.id for a in acks],),
                )
            }
        tracks: defaultdict[str, set[int]] = defaultdict(set)
        for a in acks:
            tracks[a.fingerprint].add(results[a.id][0])
        duplicated = [song for song, ids in tracks.items() if len(ids) > 1]
        if duplicated:
            raise UserError(
                f"drill: {len(duplicated)} of {len(tracks)} songs submitted again during the "
                "fault got a second track"
            )
        ring = HashRing(settings.index.shards)
        owned = {a.fingerprint for a in acks if ring.owner(results[a.id][1]) == shard}
        self.report.notes.append(
            f"{len(tracks)} songs submitted again during the fault ({len(owned)} with their "
            "fingerprint on the lost shard) stayed on their tracks"
        )

    def _found(self, acks: list[Ack]) -> list[bool]:
        data: dict[str, object] = {"client": self.stack.client_key, "format": "json", "batch": 1}
        for i, ack in enumerate(acks):
            data[f"fingerprint.{i}"] = ack.fingerprint
            data[f"duration.{i}"] = 30
        try:
            body = httpx.post(f"{self.stack.api_url}/v2/lookup", data=data, timeout=10).json()
        except (httpx.HTTPError, ValueError) as exc:
            self.report.notes.append(f"lookup failed: {exc}")
            return [False] * len(acks)
        if body.get("status") != "ok":
            self.report.notes.append(f"lookup answered {body.get('error')}")
            return [False] * len(acks)
        found = {int(item["index"]): item["results"] for item in body.get("fingerprints", [])}
        return [any(r.get("score", 0) > 0.9 for r in found.get(i, [])) for i in range(len(acks))]


# ---- scenarios -------------------------------------------------------------------------


def pg_primary_lost(d: Drill) -> None:
    s = d.stack

    def lose() -> None:
        s.kill("postgresql")
        s.wipe("postgresql")

    d.fault("PostgreSQL primary killed (-9) and its data folder deleted", lose)
    d.command(FAILOVER)
    d.service("restart api, workers, cron", lambda: _restart(s, APP_SERVICES))
    d.healthy()
    d.command(NEW_FULL_BACKUP)


def pitr(d: Drill) -> None:
    s = d.stack
    conninfo = s.settings.database.get("fingerprint").conninfo()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        target: datetime = row[0]
        time.sleep(0.5)

        def damage() -> None:
            conn.execute("UPDATE fingerprint SET length = 1")

        d.fault("bad deploy: every fingerprint's length overwritten", damage)
    d.env["TARGET_TIME"] = target.astimezone(UTC).isoformat(sep=" ")
    d.report.notes.append(f"recovery target {d.env['TARGET_TIME']}")
    d.service(
        "stop api, workers, cron, index shards",
        lambda: s.stop_services([*APP_SERVICES, *INDEX_SERVICES]),
    )
    d.service(
        "stop PostgreSQL (primary and replica)",
        lambda: s.stop_services(["postgresql", "postgresql-replica"]),
    )
    d.command(RESTORE_PG_TIME)
    d.service("start PostgreSQL", lambda: s.start_service("postgresql"))
    d.command(FINISH_PG)
    for shard in INDEX_SERVICES:
        d.command(restore_shard(shard))
    d.service("start index shards", lambda: s.start_services(INDEX_SERVICES))
    d.command(CATCH_UP_ALL)
    d.service("start api, workers, cron", lambda: s.start_services(APP_SERVICES))
    d.command(RESTORE_NATS)
    d.healthy()
    d.service("re-clone the replica", s.clone_replica)
    d.command(NEW_FULL_BACKUP)


def index_node_lost(d: Drill) -> None:
    s = d.stack

    def lose() -> None:
        s.kill("index-2")
        s.wipe("index-2")

    d.fault("index shard 2 killed (-9) and its data folder deleted", lose)
    # songs of the snapshot the shard comes back from, while their fingerprints are missing
    if not d.backed_up:
        raise UserError("drill: no submission was imported before the backups")
    again = d.resubmit(d.backed_up)
    # a restored shard answers before it is caught up: an import planned then would miss
    # the fingerprints added after the snapshot and make them a second track
    d.service("stop workers", lambda: s.stop_services(WORKER_SERVICES))
    d.command(restore_shard("index-2"))
    d.service("start index-2", lambda: s.start_service("index-2"))
    d.command(CATCH_UP_2)
    d.service("start workers", lambda: s.start_services(WORKER_SERVICES))
    d.healthy()
    lost = s.settings.index.shards[INDEX_SERVICES.index("index-2")]
    d.one_track_per_song([*d.backed_up, *again], shard=lost)


def redis_lost(d: Drill) -> None:
    s = d.stack

    def lose() -> None:
        s.kill("redis")
        s.wipe("redis")

    d.fault("Redis killed (-9) and its data folder deleted", lose)
    d.command(RESTORE_REDIS)
    d.service("start Redis", lambda: s.start_service("redis"))
    d.healthy()


def nats_node_lost(d: Drill) -> None:
    s = d.stack

    def lose() -> None:
        s.kill("nats-3")
        s.wipe("nats-3")

    d.fault("NATS node 3 killed (-9) and its store deleted", lose)
    d.service("start a new nats-3 with an empty store", lambda: s.start_service("nats-3"))
    d.command(RESTORE_NATS)
    d.healthy()


def nats_lost(d: Drill) -> None:
    s = d.stack

    def lose() -> None:
        for name in NATS_SERVICES:
            s.kill(name)
            s.wipe(name)

    before = s.pids(APP_SERVICES)
    d.fault("all three NATS nodes killed (-9) and their stores deleted", lose)
    d.service("start three new NATS nodes", lambda: s.start_services(NATS_SERVICES))
    d.command(RESTORE_NATS)
    recovered = time.time()
    d.healthy()
    # api, cron and the workers reconnect and the workers re-bind in place: the runbook
    # restarts nothing, and the drill proves the same processes import what comes after
    d.imported_without_restarts(before, since=recovered)
    d.rebound_in_place(WORKER_SERVICES)


def total_loss(d: Drill) -> None:
    s = d.stack
    servers = ["postgresql", "postgresql-replica", "redis", *NATS_SERVICES, *INDEX_SERVICES]

    def lose() -> None:
        for name in [*APP_SERVICES, *servers]:
            s.kill(name)
        for name in servers:
            s.wipe(name)
        shutil.rmtree(s.files.logs, ignore_errors=True)

    d.fault("every process killed (-9), every data folder deleted; backups kept", lose)
    d.command(RESTORE_PG)
    d.service("start PostgreSQL", lambda: s.start_service("postgresql"))
    d.command(FINISH_PG)
    d.command(RESTORE_REDIS)
    d.service("start Redis", lambda: s.start_service("redis"))
    for shard in INDEX_SERVICES:
        d.command(restore_shard(shard))
    d.service(
        "start index shards and NATS", lambda: s.start_services([*INDEX_SERVICES, *NATS_SERVICES])
    )
    d.command(CATCH_UP_ALL)
    d.service("start api, workers, cron", lambda: s.start_services(APP_SERVICES))
    d.command(RESTORE_NATS)
    d.healthy()
    d.service("re-clone the replica", s.clone_replica)
    d.command(NEW_FULL_BACKUP)


def _restart(stack: DrillStack, names: tuple[str, ...]) -> None:
    stack.stop_services(names)
    stack.start_services(names)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "pg-primary-lost",
            "PostgreSQL primary lost: promote the replica",
            pg_primary_lost,
            (FAILOVER, CHECK, NEW_FULL_BACKUP),
        ),
        Scenario(
            "pitr",
            "Data corruption or bad deploy: point-in-time restore",
            pitr,
            (
                RESTORE_PG_TIME,
                FINISH_PG,
                *map(restore_shard, INDEX_SERVICES),
                CATCH_UP_ALL,
                RESTORE_NATS,
                CHECK,
                NEW_FULL_BACKUP,
            ),
        ),
        Scenario(
            "index-node-lost",
            "Index node lost: snapshot restore and catch-up",
            index_node_lost,
            (restore_shard("index-2"), CATCH_UP_2, CHECK),
        ),
        Scenario("redis-lost", "Redis lost: restore RDB + AOF", redis_lost, (RESTORE_REDIS, CHECK)),
        Scenario(
            "nats-node-lost", "One NATS node of three lost", nats_node_lost, (RESTORE_NATS, CHECK)
        ),
        Scenario(
            "nats-lost",
            "NATS lost entirely: re-publish pending submissions",
            nats_lost,
            (RESTORE_NATS, CHECK),
        ),
        Scenario(
            "total-loss",
            "Total loss: everything from backups alone",
            total_loss,
            (
                RESTORE_PG,
                FINISH_PG,
                RESTORE_REDIS,
                *map(restore_shard, INDEX_SERVICES),
                CATCH_UP_ALL,
                RESTORE_NATS,
                CHECK,
                NEW_FULL_BACKUP,
            ),
        ),
    )
}


def run_drill(
    scenario: Scenario,
    root: Path,
    *,
    echo: Callable[[str], None],
    servers: ServerSet = "debian",
) -> DrillReport:
    """Run one drill in `root` (created; left in place with logs, report and plot) on the
    `servers` set of drills.stack."""
    stack = DrillStack(root, servers=servers)
    drill = Drill(scenario, stack, echo=echo)
    drill.report.servers = servers
    try:
        drill.prepare()
        scenario.run(drill)
        traffic = drill.verify()
    finally:
        if drill.writer is not None and drill.writer.is_alive():
            drill.writer.stop()
        stack.close()
    json_path, png_path = drill.report.write(root, traffic)
    echo(drill.report.summary())
    echo(f"report {json_path}\nplot   {png_path}")
    return drill.report
