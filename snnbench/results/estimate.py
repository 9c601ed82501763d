"""How long a run will take, from what earlier runs took.

A job's size is its work in sample-steps (:func:`job_weight`: the timing phases' batches plus every
epoch's training and evaluation samples, times ``T``). Earlier runs' ``job`` records give each
runner's fixed cost per job (its compile time plus :data:`START_S` of worker start and imports) and
its seconds per unit of work beyond that; the run's own overhead (parity workers, time between jobs)
comes from each earlier run's wall time over the sum of its jobs. Runs measured on this machine
(same CPU model, core count and GPUs) are preferred; without one the estimate comes from the
nearest kind of machine that has history (the committed publish), and says which.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

#: timing phases run roughly this many batches' worth of steps per job (warm-ups, repeats, floor)
TIMING_BATCHES = 60
#: a job's worker start-up and framework imports, seconds (the part of a job no record times)
START_S = 10.0


def job_weight(case) -> float:
    """A job's expected work in sample-steps: the ETA's and the estimate's unit."""
    from ..data import FORMATS

    spec = case.spec
    steps = TIMING_BATCHES * spec.batch
    if spec.epochs:
        full = FORMATS[spec.dataset].full_sizes if spec.dataset in FORMATS else (2048, 512)
        n_train = spec.train_samples or full[0]
        n_test = spec.test_samples or full[1]
        steps += spec.epochs * (n_train + n_test / 3)  # evaluation is a forward pass only
    return float(steps * spec.time_steps)


def machine_key(environment: dict[str, Any]) -> tuple:
    """What makes two environments the same machine for timing purposes."""
    gpus = tuple(g.get("name", "") for g in environment.get("gpus") or [])
    return environment.get("cpu"), environment.get("cpu_count"), gpus


@dataclass
class Estimate:
    seconds: float
    source: str  # where the rates came from, as a user reads it
    same_machine: bool
    jobs_matched: int  # jobs whose runner had history


def _wall_s(manifest: dict[str, Any]) -> float | None:
    try:
        fmt = "%Y-%m-%dT%H:%M:%S%z"
        return (datetime.strptime(manifest["finished"], fmt) - datetime.strptime(manifest["started"], fmt)).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None


def _history(run_path: Path) -> tuple[dict, dict[str, list[tuple[float, float, float]]], float] | None:
    """(environment, runner -> [(job seconds, job weight, fixed seconds)], overhead factor) of one
    earlier complete run; None for anything else."""
    from ..spec import case_from_dict

    try:
        manifest = json.loads((run_path / "manifest.json").read_text())
        cases = {c["id"]: case_from_dict(c) for c in manifest.get("cases", [])}
        records = [json.loads(line) for line in (run_path / "records.jsonl").read_text().splitlines() if line.strip()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # not a run, or one this version cannot read: no history from it
    if manifest.get("status") != "complete":
        return None
    ok = [r for r in records if isinstance(r, dict) and r.get("case") in cases and r.get("status") == "ok"
          and isinstance(r.get("value"), (int, float))]
    compile_s = {(r["case"], r["runner"]): float(r["value"]) for r in ok if r.get("metric") == "compile_s"}
    per_runner: dict[str, list[tuple[float, float, float]]] = {}
    for r in ok:
        if r.get("metric") == "job":
            fixed = START_S + compile_s.get((r["case"], r["runner"]), 0.0)
            per_runner.setdefault(r["runner"], []).append((float(r["value"]), job_weight(cases[r["case"]]), fixed))
    total = sum(s for pairs in per_runner.values() for s, _, _ in pairs)
    if not per_runner:
        return None
    wall = _wall_s(manifest)
    overhead = min(max(wall / total, 1.0), 3.0) if wall and total else 1.2
    return manifest.get("environment") or {}, per_runner, overhead


def find_runs(roots: list[Path]) -> list[Path]:
    """Run directories under ``roots`` (a results folder and its machine-class folders)."""
    found = []
    for root in roots:
        for manifest in sorted(Path(root).glob("*/manifest.json")) + sorted(Path(root).glob("*/*/manifest.json")):
            found.append(manifest.parent)
    return found


def estimate(jobs: list[tuple[Any, str]], runs: list[Path], environment: dict[str, Any]) -> Estimate | None:
    """Seconds ``jobs`` (``(case, runner)`` pairs) should take, from the earlier ``runs``; None when
    no earlier run has any job to learn from."""
    here = machine_key(environment)
    histories = [h for h in map(_history, runs) if h is not None]
    if not histories:
        return None
    same = [h for h in histories if machine_key(h[0]) == here]
    pool = same or [h for h in histories if machine_key(h[0]) == machine_key(histories[-1][0])]
    rates: dict[str, list[float]] = {}
    fixed: dict[str, list[float]] = {}
    for _, per_runner, _ in pool:
        for runner, jobs_seen in per_runner.items():
            for seconds, weight, fixed_s in jobs_seen:
                fixed.setdefault(runner, []).append(min(fixed_s, seconds))
                rates.setdefault(runner, []).append(max(seconds - fixed_s, 0.1 * seconds) / max(weight, 1.0))
    rate = {runner: statistics.median(values) for runner, values in rates.items()}
    fix = {runner: statistics.median(values) for runner, values in fixed.items()}
    fallback_rate, fallback_fix = statistics.median(rate.values()), statistics.median(fix.values())
    overhead = statistics.median(h[2] for h in pool)
    seconds = overhead * sum(fix.get(runner, fallback_fix) + job_weight(case) * rate.get(runner, fallback_rate)
                             for case, runner in jobs)
    env = pool[0][0]
    where = "this machine" if same else f"a {env.get('cpu_count')}-core {env.get('cpu') or 'CPU'}" + (
        f" with {', '.join(machine_key(env)[2])}" if machine_key(env)[2] else " without GPU")
    return Estimate(seconds=seconds, source=f"from {len(pool)} earlier run(s) on {where}", same_machine=bool(same),
                    jobs_matched=sum(runner in rate for _, runner in jobs))


def describe(n_jobs: int, est: Estimate | None) -> str:
    """The line a run prints before it starts."""
    if est is None:
        return f"{n_jobs} job(s); no earlier run to estimate the time from"
    minutes = est.seconds / 60
    length = f"~{minutes:.0f} min" if minutes >= 1.5 else f"~{est.seconds:.0f} s"
    caveat = "" if est.same_machine else "; this machine may differ"
    return f"{n_jobs} job(s), estimated {length} ({est.source}{caveat})"
