"""The guard a regression check can trust across machines: the reference's forward+backward time
per step (as the harness measures it: K batches in one compiled program) divided by the same run's
GEMM floor (the workload's matrix products alone). Both are measured here, interleaved, so machine
speed and load cancel out of the ratio.

The bound comes from results/baselines/<machine class>/ratio_guard.json (``make bench-baseline``
records it: the measured ratio times a margin of 2) or, for a machine class without one, the
generous DEFAULT_BOUND. ``SNNBENCH_UPDATE_RATIO=1`` rewrites the file from this measurement."""

import json
import os

import numpy as np
import pytest

from snnbench.harness.timing import RepeatPolicy, time_calls

from .conftest import BASELINES, built, machine_class, ratio_bounds, remeasured, shd_case, spike_batches

pytest.importorskip("haiku")

pytestmark = pytest.mark.bench_check  # a timing ratio: `make bench-check`, not the test run

DEFAULT_BOUND = 4.0
MARGIN = 2.0


def measure_ratio(rounds: int = 5) -> tuple[float, float, float]:
    case = shd_case()
    r = built("reference", case)
    k = 4
    batches = r.prepare_batches(*spike_batches(case, k))
    floor_fn = r.gemm_floor().fwdbwd
    policy = RepeatPolicy(warmup=1, min_repeats=3, min_time_s=0.0)
    step, floor = [], []
    for _ in range(rounds):  # interleaved: drift and load hit both sides alike
        step += time_calls(lambda: r.fwdbwd_steps(batches), r.barrier, policy).per(k).seconds
        floor += time_calls(floor_fn, r.barrier, policy).seconds
    s, f = float(np.median(step)), float(np.median(floor))
    return s / f, s * 1e3, f * 1e3


def test_reference_stays_close_to_its_gemm_floor():
    entry = ratio_bounds().get("reference_fwdbwd_over_floor", {})
    bound = entry.get("bound", DEFAULT_BOUND)

    def measure() -> tuple[float, float, float]:
        ratio, step_ms, floor_ms = measure_ratio()
        print(f"\nratio guard ({machine_class()}): reference fwd+bwd {step_ms:.2f} ms / GEMM floor {floor_ms:.2f} ms "
              f"= {ratio:.2f} (bound {bound:.2f}, recorded {entry.get('measured', 'none')})")
        return ratio, step_ms, floor_ms

    ratio, step_ms, floor_ms = remeasured(measure, lambda r: r[0] <= bound, lambda r: f"{r[0]:.2f}")
    if os.environ.get("SNNBENCH_UPDATE_RATIO") == "1":
        path = BASELINES / machine_class() / "ratio_guard.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"reference_fwdbwd_over_floor": {
            "measured": round(ratio, 3), "bound": round(ratio * MARGIN, 3), "step_ms": round(step_ms, 3),
            "floor_ms": round(floor_ms, 3), "shape": "B32 T64 128-128-128-20"}}, indent=2) + "\n")
    assert ratio <= bound, f"reference fwd+bwd is {ratio:.2f}x its GEMM floor, above the bound {bound:.2f}"
