"""Clock discipline and sample statistics.

Every timed region ends with the runner's device barrier, so asynchronous device work is counted.
Warm-up calls are made and discarded first; then calls repeat until both a minimum count and a
minimum total time are reached (pyperf-style calibration), keeping every sample. Each sample also
carries the process's minor page faults and kernel CPU time over the same region: a figure that
pays for fresh memory mappings on every call shows it there (see :mod:`.allocator`).
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class RepeatPolicy:
    warmup: int = 2
    min_repeats: int = 5
    min_time_s: float = 1.0
    max_repeats: int = 200
    #: a measurement whose coefficient of variation is above this is flagged ``unstable``
    cv_threshold: float = 0.10

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "RepeatPolicy":
        return cls(**(d or {}))


@dataclass
class Timing:
    """Per-sample figures of one timed callable; index ``i`` of each list is the same call."""

    seconds: list[float] = field(default_factory=list)
    minor_faults: list[int] = field(default_factory=list)  # minor page faults of this process
    sys_seconds: list[float] = field(default_factory=list)  # kernel CPU time of this process
    warmup_seconds: list[float] = field(default_factory=list)  # the first is where JITs compile

    def per(self, steps: int) -> "Timing":
        """Every figure divided by ``steps`` (a call that runs ``steps`` steps -> per step)."""
        return Timing([s / steps for s in self.seconds], [f / steps for f in self.minor_faults],
                      [s / steps for s in self.sys_seconds], [s / steps for s in self.warmup_seconds])


def _usage() -> tuple[int, float]:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_minflt, u.ru_stime


def time_calls(fn: Callable[[], Any], barrier: Callable[[Any], None],
               policy: RepeatPolicy = RepeatPolicy()) -> Timing:
    """Time ``fn``: each sample runs from the call until ``barrier(fn())`` returns."""
    out = Timing()
    for _ in range(policy.warmup):
        t0 = time.perf_counter()
        barrier(fn())
        out.warmup_seconds.append(time.perf_counter() - t0)
    start = time.perf_counter()
    while len(out.seconds) < policy.min_repeats or (
        time.perf_counter() - start < policy.min_time_s and len(out.seconds) < policy.max_repeats
    ):
        faults0, sys0 = _usage()
        t0 = time.perf_counter()
        barrier(fn())
        t1 = time.perf_counter()
        faults1, sys1 = _usage()
        out.seconds.append(t1 - t0)
        out.minor_faults.append(faults1 - faults0)
        out.sys_seconds.append(sys1 - sys0)
    return out


def summarize(samples: list[float], seed: int = 0, n_boot: int = 2000) -> dict[str, float | int | None]:
    """Median, IQR, min, coefficient of variation and a bootstrap 95% CI of the median."""
    x = np.asarray(samples, float)
    if x.size == 0:
        return {"n": 0, "median": None, "min": None, "q1": None, "q3": None, "cv": None, "ci_low": None, "ci_high": None}
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    if x.size > 1:
        rng = np.random.default_rng(seed)
        boots = np.median(rng.choice(x, (n_boot, x.size), replace=True), axis=1)
        lo, hi = np.percentile(boots, [2.5, 97.5])
    else:
        lo = hi = med
    mean = x.mean()
    return {
        "n": int(x.size),
        "median": float(med),
        "min": float(x.min()),
        "q1": float(q1),
        "q3": float(q3),
        "cv": float(x.std(ddof=1) / mean) if x.size > 1 and mean > 0 else 0.0,
        "ci_low": float(lo),
        "ci_high": float(hi),
    }
