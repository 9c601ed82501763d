"""Where a job's wall time goes: a clock of named, non-overlapping phases.

A worker process holds one :class:`PhaseClock` (:data:`CLOCK`); the harness opens a phase around each
step of a job (``with phase("training"): ...``). Phases nest: time spent in an inner phase is counted
there and not in the outer one, so a job's phases never double count and add up to the time the clock
ran. The worker reports the clock's totals at its end; the parent adds what only it can see (the
worker's start-up and exit, the other workers of the job) and the job record carries the whole
breakdown (``phases``, seconds per phase), which :mod:`snnbench.results.timebudget` sums per runner
and per run.

Phase names are fixed here (:data:`PHASES`), so that every record, summary and chart uses the same
words; a phase the harness opens under another name is an error caught by the tests.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

#: every phase, in the order a job goes through them, with what it holds
PHASES: dict[str, str] = {
    "parity": "the parity gate: the adapter against the reference (run in a child process)",
    "start-up": "the worker process starting: Python, snnbench's modules, and its exit",
    "import": "importing the framework and checking it can run the case",
    "data": "reading the dataset (or making the synthetic one)",
    "build": "building the network and loading the canonical weights",
    "precision probe": "one forward pass to see which dtype the runner really computes in",
    "compile": "compiling the network (a cold cache), where the runner compiles",
    "fwd timing": "forward-only timing, warm-up calls included (a JIT's first call compiles there)",
    "fwd+bwd timing": "forward+backward timing, warm-up calls included",
    "gemm floor": "the workload's matrix products alone, timed",
    "efficiency": "one forward pass for NeuroBench's metrics and the firing rates",
    "staging": "moving the training and test sets to the device",
    "training": "the epochs, on the clock",
    "evaluation": "the test set after each epoch",
    "consistency probes": "one fwd+bwd sample after each epoch, for the step-consistency check",
    "saving weights": "the trained canonical weights written to the run directory",
    "extrapolation": "step-by-step evaluation at other sequence lengths",
    "memory phases": "phases re-run in workers of their own where the device's peak cannot be reset",
    "other": "what no phase above holds (the parent's bookkeeping, a worker that ended early)",
}
#: the phases that are measurement (the rest is what measuring costs)
MEASURED = ("compile", "training", "evaluation")


class PhaseClock:
    """Seconds per named phase; nested phases pause the outer one (exclusive times)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._stack: list[list] = []  # [name, started]

    def _add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if name not in PHASES:
            raise ValueError(f"unknown phase {name!r} (known: {', '.join(PHASES)})")
        now = time.perf_counter()
        if self._stack:
            outer = self._stack[-1]
            self._add(outer[0], now - outer[1])
        self._stack.append([name, now])
        try:
            yield
        finally:
            done = time.perf_counter()
            inner = self._stack.pop()
            self._add(inner[0], done - inner[1])
            if self._stack:
                self._stack[-1][1] = done

    def total(self) -> float:
        return sum(self.seconds.values())


#: the clock of this process (a worker runs one job)
CLOCK = PhaseClock()


def phase(name: str):
    """``with phase("training"): ...`` on this process's clock."""
    return CLOCK.phase(name)


def job_phases(worker: dict[str, float], worker_wall_s: float, extra: dict[str, float] | None = None,
               job_wall_s: float | None = None) -> dict[str, float]:
    """A job's breakdown: the bench worker's phases, its start-up and exit (``worker_wall_s`` minus what its
    clock holds), the job's other workers (``extra``: parity, memory phases) and, given ``job_wall_s``, what
    is left as ``other``. Seconds, in :data:`PHASES` order, zero phases left out."""
    out = {k: float(v) for k, v in worker.items() if k in PHASES}
    out["start-up"] = out.get("start-up", 0.0) + max(worker_wall_s - sum(worker.values()), 0.0)
    for k, v in (extra or {}).items():
        out[k] = out.get(k, 0.0) + float(v)
    if job_wall_s is not None:
        out["other"] = out.get("other", 0.0) + max(job_wall_s - sum(out.values()), 0.0)
    return {k: round(out[k], 4) for k in PHASES if round(out.get(k, 0.0), 4) > 0.0}
