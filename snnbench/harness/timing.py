"""Clock discipline and sample statistics.

Every timed region ends with the runner's device barrier, so asynchronous device work is counted.
Warm-up calls are made and discarded first; then calls repeat until a minimum count is reached and
either the samples' median is known tightly enough (``ci_rel``: the adaptive policy) or a minimum
total time has passed (pyperf-style calibration), keeping every sample. Each sample also
carries the process's minor page faults and kernel CPU time over the same region: a figure that
pays for fresh memory mappings on every call shows it there (see :mod:`.allocator`).
"""

from __future__ import annotations

import math
import resource
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class RepeatPolicy:
    """How often a callable is called: ``warmup`` calls discarded, then at least ``min_repeats``
    samples; after those, sampling stops as soon as the distribution-free 95% confidence interval of
    the median (:func:`median_ci`) lies within ``ci_rel`` of the median on each side (``ci_rel`` 0:
    never early), and at the latest once ``min_time_s`` seconds of samples or ``max_repeats``
    samples are reached. The adaptive stop only ever cuts sampling short of the time-based rule."""

    warmup: int = 2
    min_repeats: int = 5
    min_time_s: float = 1.0
    max_repeats: int = 200
    #: a measurement whose coefficient of variation is above this is flagged ``unstable``
    cv_threshold: float = 0.10
    #: stop once the median's 95% CI half-width is at most this fraction of the median (0: off)
    ci_rel: float = 0.0

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


def median_ci(samples: list[float], level: float = 0.95) -> tuple[float, float]:
    """The distribution-free confidence interval of the median: the order statistics ``x_(j)``,
    ``x_(n+1-j)`` with the largest ``j`` whose binomial(n, 1/2) coverage is at least ``level`` (the
    whole range when ``n`` is too small to reach it: 5 or fewer samples at 95%). Exact for any
    continuous distribution, no resampling, so cheap enough to ask after every sample."""
    x = np.sort(np.asarray(samples, float))
    n = x.size
    if n == 0:
        return float("nan"), float("nan")
    pmf = [math.comb(n, i) / 2.0 ** n for i in range(n + 1)]
    j = 0  # 0-based: the interval [x[j], x[n-1-j]] covers the median with 1 - 2 * P(B <= j)
    while j + 1 < n - 1 - j and 1 - 2 * sum(pmf[: j + 2]) >= level:
        j += 1
    return float(x[j]), float(x[n - 1 - j])


def ci_tight(samples: list[float], ci_rel: float) -> bool:
    """Whether the median's 95% CI (:func:`median_ci`) lies within ``ci_rel`` of the median on each side."""
    if ci_rel <= 0 or len(samples) < 2:
        return False
    lo, hi = median_ci(samples)
    med = float(np.median(samples))
    return med > 0 and med - lo <= ci_rel * med and hi - med <= ci_rel * med


def _enough(seconds: list[float], elapsed: float, policy: RepeatPolicy) -> bool:
    n = len(seconds)
    if n < policy.min_repeats:
        return False
    return n >= policy.max_repeats or elapsed >= policy.min_time_s or ci_tight(seconds, policy.ci_rel)


def time_calls(fn: Callable[[], Any], barrier: Callable[[Any], None],
               policy: RepeatPolicy = RepeatPolicy(), warmup: int | None = None) -> Timing:
    """Time ``fn``: each sample runs from the call until ``barrier(fn())`` returns. ``warmup``
    overrides the policy's warm-up count (the caller knows ``fn`` is already warm)."""
    out = Timing()
    for _ in range(policy.warmup if warmup is None else warmup):
        t0 = time.perf_counter()
        barrier(fn())
        out.warmup_seconds.append(time.perf_counter() - t0)
    start = time.perf_counter()
    while not _enough(out.seconds, time.perf_counter() - start, policy):
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
