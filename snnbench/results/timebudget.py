"""Where a run's time went: each job's phases (:mod:`snnbench.harness.phases`) summed per runner and
for the run, beside the part of it that is measurement.

*Measurement* is what the results are made of: compile, the epochs, their evaluation, and the timed
samples of the step timings, the GEMM floor and the step-consistency probes (the samples alone, not
their warm-up calls). Everything else (starting workers, imports, the parity gate, warm-ups, staging,
what lies between jobs) is what measuring costs; ``overhead`` is the run's wall time over its
measurement.
"""

from __future__ import annotations

from typing import Any

from ..harness.phases import PHASES

#: the run's own phases, outside any job
RUN_PHASES = {"before jobs": "planning the run: finding and checking the data, sizing the cases",
              "between jobs": "the parent between one job's end and the next one's start (and a job that did "
                              "not finish: an interrupted run's last)"}
#: phases grouped for a short table and the stacked bar, in display order
GROUPS: dict[str, tuple[str, ...]] = {
    "training": ("training",),
    "evaluation": ("evaluation",),
    "compile": ("compile",),
    "timing": ("fwd timing", "fwd+bwd timing", "gemm floor", "consistency probes"),
    "parity": ("parity",),
    "start-up": ("start-up", "import", "data", "build", "staging", "precision probe"),
    "other": ("efficiency", "saving weights", "extrapolation", "memory phases", "other", *RUN_PHASES),
}


def timed_samples_s(records: list[dict[str, Any]]) -> float:
    """Seconds inside timed samples (fwd, fwd+bwd per call and per step, their GEMM floors, and the
    step-consistency probes between epochs, which are fwd+bwd per-step samples over the same K
    batches) of one job's ``records``."""
    total = 0.0
    k_probe = next(((r.get("extra") or {}).get("steps_per_sample") or 1 for r in records
                    if r.get("metric") == "fwdbwd_ms" and r.get("status") == "ok"), 1)
    for r in records:
        if r.get("metric") == "epoch_s" and r.get("status") == "ok":
            total += k_probe * sum((r.get("step_consistency") or {}).get("fwdbwd_samples_ms") or [])
        if r.get("metric") not in ("fwd_ms", "fwdbwd_ms") or r.get("status") != "ok":
            continue
        extra = r.get("extra") or {}
        k = extra.get("steps_per_sample") or 1
        total += sum((extra.get("per_call") or {}).get("samples") or [])
        total += k * sum(r.get("samples") or [])  # per-step samples, each the K-step call divided by K
        total += sum((extra.get("floor") or {}).get("samples_ms") or [])
    return total / 1e3


def _measured(phases: dict[str, float], samples_s: float) -> float:
    return sum(phases.get(p, 0.0) for p in ("compile", "training", "evaluation")) + samples_s


def _add(into: dict[str, float], phases: dict[str, float]) -> None:
    for k, v in phases.items():
        into[k] = into.get(k, 0.0) + float(v)


def grouped(phases: dict[str, float]) -> dict[str, float]:
    """``phases`` summed into :data:`GROUPS`."""
    return {g: sum(phases.get(p, 0.0) for p in members) for g, members in GROUPS.items()}


def time_budget(records: list[dict[str, Any]], manifest: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Per runner and for the run: wall seconds, seconds per phase, measured seconds and their ratio.
    None when no job record carries phases (a run from before they were recorded)."""
    jobs = [r for r in records if r.get("metric") == "job" and r.get("phases")]
    if not jobs:
        return None
    by_runner: dict[str, dict[str, Any]] = {}
    for job in jobs:
        row = by_runner.setdefault(job["runner"], {"runner": job["runner"], "jobs": 0, "wall_s": 0.0, "phases": {},
                                                   "timed_samples_s": 0.0})
        mine = [r for r in records if r.get("runner") == job["runner"] and r.get("case") == job.get("case")]
        row["jobs"] += 1
        row["wall_s"] += float(job.get("job_wall_s", sum(job["phases"].values())))
        _add(row["phases"], job["phases"])
        row["timed_samples_s"] += timed_samples_s(mine)
    run_phases: dict[str, float] = {}
    for row in by_runner.values():
        row["measured_s"] = _measured(row["phases"], row["timed_samples_s"])
        row["overhead"] = row["wall_s"] / row["measured_s"] if row["measured_s"] else None
        _add(run_phases, row["phases"])
    jobs_wall = sum(row["wall_s"] for row in by_runner.values())
    timeline = (manifest or {}).get("timeline") or []
    if timeline:
        run_phases["before jobs"] = sum(t.get("before_jobs_s", 0.0) for t in timeline)
        run_phases["between jobs"] = max(sum(t.get("jobs_s", 0.0) for t in timeline) - jobs_wall, 0.0)
    wall = sum(run_phases.values())
    samples = sum(row["timed_samples_s"] for row in by_runner.values())
    measured = _measured(run_phases, samples)
    order = [*PHASES, *RUN_PHASES]
    return {"runners": sorted(by_runner.values(), key=lambda r: -r["wall_s"]),
            "run": {"wall_s": wall, "phases": {k: run_phases[k] for k in order if run_phases.get(k)},
                    "timed_samples_s": samples, "measured_s": measured,
                    "overhead": wall / measured if measured else None, "complete_timeline": bool(timeline)}}


def budget_lines(budget: dict[str, Any]) -> list[str]:
    """The end-of-run summary: one line for the run, one per runner, in seconds by phase group."""
    run = budget["run"]
    head = f"where the time went: {run['wall_s'] / 60:.1f} min, of which measurement {run['measured_s'] / 60:.1f} min"
    if run["overhead"]:
        head += f" (wall / measurement {run['overhead']:.2f}x)"
    lines = [head, "  " + _groups_text(grouped(run["phases"]))]
    for row in budget["runners"]:
        lines.append(f"  {row['runner']}: {row['wall_s']:.0f} s = {_groups_text(grouped(row['phases']))}")
    return lines


def _groups_text(groups: dict[str, float]) -> str:
    return ", ".join(f"{name} {seconds:.0f} s" for name, seconds in groups.items() if seconds >= 0.5) or "-"
