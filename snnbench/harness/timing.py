"""Clock discipline and sample statistics.

Every timed region ends with the runner's device barrier, so asynchronous device work is counted.
Warm-up calls are made and discarded first; then calls repeat until both a minimum count and a
minimum total time are reached (pyperf-style calibration), keeping every sample.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
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


def time_calls(fn: Callable[[], Any], barrier: Callable[[Any], None], policy: RepeatPolicy = RepeatPolicy(),
               warmups: list[float] | None = None) -> list[float]:
    """Seconds per call of ``fn``, each measured up to ``barrier(fn())`` returning.

    The warm-up calls' durations (first call: tracing, compiling) go to ``warmups`` if given.
    """
    for _ in range(policy.warmup):
        t0 = time.perf_counter()
        barrier(fn())
        if warmups is not None:
            warmups.append(time.perf_counter() - t0)
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < policy.min_repeats or (
        time.perf_counter() - start < policy.min_time_s and len(samples) < policy.max_repeats
    ):
        t0 = time.perf_counter()
        barrier(fn())
        samples.append(time.perf_counter() - t0)
    return samples


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
