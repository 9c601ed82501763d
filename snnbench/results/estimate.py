"""How long a run will take, from what earlier runs took.

A job's size is its work in sample-steps (:func:`job_weight`: the timing phases' batches plus every
epoch's training and evaluation samples, times ``T``). Earlier runs' ``job`` records give each
runner's fixed cost per job (its compile time plus :data:`START_S` of worker start and imports) and
its seconds per unit of work beyond that; the run's own overhead (parity workers, time between jobs)
comes from each earlier run's wall time over the sum of its jobs. Runs measured on this machine
(same CPU model, core count and GPUs) are preferred; without one the estimate comes from the
nearest kind of machine that has history (the committed publish), and says which. Where several
earlier runs have the same job, the newest one's figures are used: code and machines change between
runs, and the latest run is the one a new run repeats (the median over runs let a run made before
the overhead cuts, or in a noisy hour, pull the estimate of a repeat 25% high).
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


@dataclass(frozen=True)
class _Seen:
    """One finished job of an earlier run."""

    suite: str
    runner: str
    seconds: float  # the job's wall time
    weight: float  # its work (:func:`job_weight`)
    fixed: float  # the part that does not grow with the work: start-up and compile
    case: str = ""  # the case id (a suite's cases may differ in network, not only in size)
    started: str = ""  # its run's start, ISO 8601 (UTC): the newest run's jobs are preferred
    skipped: bool = False  # a job skipped (the runner cannot express the case, or is not installed)

    @property
    def rate(self) -> float:
        """Seconds per unit of work beyond the fixed part."""
        return max(self.seconds - self.fixed, 0.1 * self.seconds) / max(self.weight, 1.0)


def _history(run_path: Path) -> tuple[dict, list[_Seen], float, str] | None:
    """(environment, its finished jobs, overhead factor: wall / sum of jobs, start time) of one earlier
    complete run; None for anything else."""
    from ..spec import case_from_dict

    try:
        manifest = json.loads((run_path / "manifest.json").read_text())
        cases = {case.id: case for case in map(case_from_dict, manifest.get("cases", []))}
        records = [json.loads(line) for line in (run_path / "records.jsonl").read_text().splitlines() if line.strip()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # not a run, or one this version cannot read: no history from it
    if manifest.get("status") != "complete":
        return None
    ok = [r for r in records if isinstance(r, dict) and r.get("case") in cases and r.get("status") == "ok"
          and isinstance(r.get("value"), (int, float))]
    compile_s = {(r["case"], r["runner"]): float(r["value"]) for r in ok if r.get("metric") == "compile_s"}
    jobs = [r for r in records if isinstance(r, dict) and r.get("metric") == "job" and r.get("case") in cases
            and r.get("status") in ("ok", "skipped") and isinstance(r.get("value"), (int, float))]
    seen = [_Seen(str(manifest.get("suite")), r["runner"], float(r["value"]), job_weight(cases[r["case"]]),
                  min(START_S + compile_s.get((r["case"], r["runner"]), 0.0), float(r["value"])), r["case"],
                  str(manifest.get("started") or ""), r["status"] == "skipped")
            for r in jobs]
    if not seen:
        return None
    wall, total = _wall_s(manifest), sum(j.seconds for j in seen)
    overhead = min(max(wall / total, 1.0), 3.0) if wall and total else 1.2
    return manifest.get("environment") or {}, seen, overhead, str(manifest.get("started") or "")


def find_runs(roots: list[Path]) -> list[Path]:
    """Run directories under ``roots`` (a results folder and its machine-class folders)."""
    found = []
    for root in roots:
        for manifest in sorted(Path(root).glob("*/manifest.json")) + sorted(Path(root).glob("*/*/manifest.json")):
            found.append(manifest.parent)
    return found


def _job_seconds(case, runner: str, suite: str, seen: list[_Seen]) -> float:
    """One job's estimate from the most similar earlier jobs: the same suite, case and runner (a job
    skipped then is skipped again, in a second), else the same suite and runner (from the newest run
    that has such a job, either way), else the same runner in any suite, else every job seen (medians
    over runs); a skipped job says nothing of another case."""
    levels = ((lambda j: j.suite == suite and j.case == case.id and j.runner == runner, True),
              (lambda j: not j.skipped and j.suite == suite and j.runner == runner, True),
              (lambda j: not j.skipped and j.runner == runner, False), (lambda j: not j.skipped, False))
    for match, newest_only in levels:
        similar = [j for j in seen if match(j)]
        if similar:
            break
    if newest_only:
        newest = max(j.started for j in similar)
        similar = [j for j in similar if j.started == newest]
    fixed = statistics.median(j.fixed for j in similar)
    return fixed + job_weight(case) * statistics.median(j.rate for j in similar)


def estimate(jobs: list[tuple[Any, str]], runs: list[Path], environment: dict[str, Any],
             suite: str = "") -> Estimate | None:
    """Seconds ``jobs`` (``(case, runner)`` pairs of ``suite``) should take, from the earlier
    ``runs``; None when no earlier run has a finished job to learn from."""
    here = machine_key(environment)
    histories = [h for h in map(_history, runs) if h is not None]
    if not histories:
        return None
    same = [h for h in histories if machine_key(h[0]) == here]
    pool = same or [h for h in histories if machine_key(h[0]) == machine_key(histories[-1][0])]
    seen = [j for _, jobs_seen, _, _ in pool for j in jobs_seen]
    of_suite = [h for h in pool if any(j.suite == suite for j in h[1])]
    # the newest run of this suite gives the overhead; with none, the median over every run
    overhead = max(of_suite, key=lambda h: h[3])[2] if of_suite else statistics.median(h[2] for h in pool)
    seconds = overhead * sum(_job_seconds(case, runner, suite, seen) for case, runner in jobs)
    env = pool[0][0]
    where = "this machine" if same else f"a {env.get('cpu_count')}-core {env.get('cpu') or 'CPU'}" + (
        f" with {', '.join(machine_key(env)[2])}" if machine_key(env)[2] else " without GPU")
    return Estimate(seconds=seconds, source=f"from {len(pool)} earlier run(s) on {where}", same_machine=bool(same),
                    jobs_matched=sum(any(j.runner == runner for j in seen) for _, runner in jobs))


def describe(n_jobs: int, est: Estimate | None) -> str:
    """The line a run prints before it starts."""
    if est is None:
        return f"{n_jobs} job(s); no earlier run to estimate the time from"
    minutes = est.seconds / 60
    length = f"~{minutes:.0f} min" if minutes >= 1.5 else f"~{est.seconds:.0f} s"
    caveat = "" if est.same_machine else "; this machine may differ"
    return f"{n_jobs} job(s), estimated {length} ({est.source}{caveat})"
