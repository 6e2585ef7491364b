"""A drill's outcome: measured RTO and RPO, the steps run, a JSON report and a PNG timeline."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from acoustid_stack.ops.drills.traffic import Traffic

RTO_TARGET = 300.0
RPO_TARGET = 60.0


@dataclass
class StepRecord:
    title: str
    command: str | None  # None: a process start/stop by the service manager
    started: float
    seconds: float
    output: str = ""


@dataclass
class DrillReport:
    scenario: str
    started: float
    servers: str = "debian"  # the server set of drills.stack (debian or pip)
    fault_at: float = 0.0
    healthy_at: float = 0.0
    acknowledged: int = 0
    lost_ids: list[int] = field(default_factory=list)
    lost_window: float = 0.0
    unsearchable_ids: list[int] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def rto(self) -> float:
        return self.healthy_at - self.fault_at

    @property
    def passed(self) -> bool:
        return (
            self.rto < RTO_TARGET
            and self.lost_window < RPO_TARGET
            and not self.unsearchable_ids
            and self.healthy_at > 0
        )

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"{self.scenario} ({self.servers}): {verdict}  "
            f"RTO {self.rto:.1f} s (target < {RTO_TARGET:.0f})  "
            f"RPO {self.lost_window:.1f} s / {len(self.lost_ids)} of {self.acknowledged} "
            f"acknowledged lost (target < {RPO_TARGET:.0f} s)  "
            f"unsearchable {len(self.unsearchable_ids)}"
        )

    def write(self, folder: Path, traffic: Traffic) -> tuple[Path, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        data = asdict(self) | {"rto_seconds": self.rto, "rpo_seconds": self.lost_window}
        data["passed"] = self.passed
        json_path = folder / f"drill-{self.scenario}.json"
        json_path.write_text(json.dumps(data, indent=2))
        png_path = folder / f"drill-{self.scenario}.png"
        self._plot(png_path, traffic)
        return json_path, png_path

    def _plot(self, path: Path, traffic: Traffic) -> None:
        import matplotlib  # noqa: PLC0415 - heavy; only drills draw

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt  # noqa: PLC0415

        t0 = self.started
        lost = set(self.lost_ids)
        fig, ax = plt.subplots(figsize=(11, 4))
        kept = [a.at - t0 for a in traffic.acks if a.id not in lost]
        gone = [a.at - t0 for a in traffic.acks if a.id in lost]
        ax.scatter(kept, [1] * len(kept), s=8, color="tab:green", label="acknowledged, kept")
        ax.scatter(gone, [1.1] * len(gone), s=14, color="tab:red", label="acknowledged, lost")
        failed = [f - t0 for f in traffic.failures]
        ax.scatter(
            failed, [0.9] * len(failed), s=8, marker="x", color="tab:orange", label="refused"
        )
        ax.axvspan(self.fault_at - t0, self.healthy_at - t0, color="tab:red", alpha=0.12)
        for step in self.steps:
            ax.axvline(step.started - t0, color="grey", lw=0.6)
            ax.text(step.started - t0, 1.2, step.title, rotation=60, fontsize=6, va="bottom")
        ax.set_ylim(0.8, 1.7)
        ax.set_yticks([])
        ax.set_xlabel("seconds since the drill started")
        ax.set_title(f"{self.scenario}: RTO {self.rto:.1f} s, RPO {self.lost_window:.1f} s")
        ax.legend(loc="lower right", fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
