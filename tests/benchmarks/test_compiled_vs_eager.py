"""A compiled runner against its eager twin, timed alternately in one process: the same module,
so the compiled one must be faster; a compile that silently ran eagerly (a graph break, a fallback)
would show here as a ratio near 1. Prints both figures."""

import numpy as np
import pytest

from snnbench.harness.timing import RepeatPolicy, time_calls

from .conftest import built, remeasured, shd_case, spike_batches

pytestmark = pytest.mark.bench_check  # a timing ratio: `make bench-check`, not the test run

BOUND = 0.9  # torch-compile / torch per training step (forward+backward); measured ~0.55 at this shape


def test_torch_compile_beats_eager_torch():
    pytest.importorskip("torch")
    case = shd_case(T=32, B=64)
    eager, compiled = built("torch", case), built("torch-compile", case)
    xs, ys = spike_batches(case, 4)
    batches = {name: r.prepare_batches(xs, ys) for name, r in (("torch", eager), ("torch-compile", compiled))}
    policy = RepeatPolicy(warmup=1, min_repeats=3, min_time_s=0.0)

    def measure() -> tuple[float, dict[str, list[float]]]:
        ms: dict[str, list[float]] = {"torch": [], "torch-compile": []}
        for _ in range(4):  # alternated rounds
            for name, r in (("torch", eager), ("torch-compile", compiled)):
                ms[name] += [1e3 * s for s in time_calls(lambda: r.fwdbwd_steps(batches[name]), r.barrier,
                                                         policy).per(4).seconds]
        ratio = float(np.median(ms["torch-compile"]) / np.median(ms["torch"]))
        print(f"\nforward+backward per step, T 32, B 64: torch {np.median(ms['torch']):.2f} ms, torch-compile "
              f"{np.median(ms['torch-compile']):.2f} ms -> {ratio:.2f}x (bound {BOUND}); graphs "
              f"{compiled.info().extra['graphs']}, breaks {compiled.info().extra['graph_breaks']}")
        return ratio, ms

    ratio, ms = remeasured(measure, lambda r: r[0] <= BOUND, lambda r: f"{r[0]:.2f}x")
    assert compiled.info().extra["graph_breaks"] == 0
    assert ratio <= BOUND, ms
