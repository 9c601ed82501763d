"""Shared set-up for the speed benchmarks: small CPU-sized shapes, built and compiled outside the
timed functions. Under the default ``--benchmark-disable`` each benchmark body runs once (a smoke
test that keeps them from rotting); ``make bench`` times them.

The ratio checks (marked ``bench_check``: the ratio guard, the idiomatic comparisons, compiled against
eager, step consistency) are not part of the test run: ``make bench-check`` runs them, and each measures
once more before it fails (:func:`remeasured`), so that a busy moment on a shared machine is not a failure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
import pytest

from snnbench.spec import parse_suite

from ..conftest import built  # noqa: F401  (the benchmarks import it from here)

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
BASELINES = ROOT / "results" / "baselines"


def machine_class() -> str:
    """Baselines are kept per machine class, the one ``snnbench publish`` and the Makefile use."""
    from snnbench.publish import machine_class as computed

    return computed()


def avx512_host() -> bool:
    """Whether this CPU has AVX-512 (``avx512f``). The same machine class has come as an AVX2-only Zen 3
    and as a Zen 4 with AVX-512, and some of docs/reference-performance.md's claims about XLA:CPU hold on
    one kind only: a check asserts a claim on the kind of host it was measured on and prints it elsewhere."""
    from snnbench.harness.env import cpu_id

    return "avx512f" in ((cpu_id() or {}).get("simd") or "").split()


def shd_case(T: int = 64, B: int = 32, hidden: int = 128, channels: int = 128, epochs: int = 1):
    net = {"neuron": {"beta": 0.9}, "surrogate": {"name": "superspike", "slope": 1.0},
           "layers": [{"type": "linear", "out": hidden}, {"type": "lif"}, {"type": "linear", "out": hidden},
                      {"type": "lif"}, {"type": "linear", "out": 20}, {"type": "li"}]}
    return parse_suite({"suite": "bench", "defaults": {"time_steps": T, "batch": B, "channels": channels,
                                                       "epochs": epochs}, "network": net,
                        "cases": [{"id": "bench"}]}, "bench.yaml").cases[0]


def layer_case(n: int = 512, T: int = 100, B: int = 16):
    net = {"neuron": {"beta": 0.9}, "surrogate": {"name": "superspike", "slope": 1.0},
           "layers": [{"type": "linear", "out": "inputs"}, {"type": "lif"}]}
    return parse_suite({"suite": "bench", "defaults": {"dataset": "random", "epochs": 0, "time_steps": T,
                                                       "batch": B, "channels": n}, "network": net,
                        "cases": [{"id": "layer"}]}, "bench.yaml").cases[0]


def conv_case(T: int = 8, B: int = 16):
    """The N-MNIST suite's m = 1 conv net on 2x34x34 inputs, at a CPU-sized T and batch."""
    net = {"neuron": {"beta": 0.9}, "surrogate": {"name": "superspike", "slope": 1.0},
           "layers": [{"type": "conv2d", "out": 12, "kernel": 5}, {"type": "lif"}, {"type": "maxpool", "kernel": 2},
                      {"type": "conv2d", "out": 32, "kernel": 5}, {"type": "lif"}, {"type": "maxpool", "kernel": 2},
                      {"type": "flatten"}, {"type": "linear", "out": 10}, {"type": "li"}]}
    return parse_suite({"suite": "bench", "defaults": {"dataset": "nmnist", "time_steps": T, "batch": B},
                        "network": net, "cases": [{"id": "conv"}]}, "bench.yaml").cases[0]


def spike_batch(case, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = (rng.random((case.spec.batch, case.spec.time_steps, case.network.inputs)) < 0.1).astype(np.float32)
    return x, rng.integers(0, case.network.outputs, case.spec.batch)


def spike_batches(case, k: int, seed: int = 0):
    """``k`` distinct batches ``x [k, B, T, C]``, ``y [k, B]`` (for the per-step timings)."""
    rng = np.random.default_rng(seed)
    x = (rng.random((k, case.spec.batch, case.spec.time_steps, case.network.inputs)) < 0.1).astype(np.float32)
    return x, rng.integers(0, case.network.outputs, (k, case.spec.batch))


def ratio_bounds() -> dict:
    path = BASELINES / machine_class() / "ratio_guard.json"
    return json.loads(path.read_text()) if path.exists() else {}


def remeasured(measure: Callable[[], T], within: Callable[[T], bool], describe: Callable[[T], str] = repr) -> T:
    """``measure()``, and if its result is outside the bound (``within`` says no), once more: the second
    measurement decides. A ratio checked on a machine that something else is using can be off once; a
    real regression is off twice."""
    result = measure()
    if within(result):
        return result
    print(f"\noutside the bound ({describe(result)}); measuring once more before failing")
    return measure()


def worker_medians(module: str) -> dict[str, dict[str, float]]:
    """``python -m module`` in a fresh process with the harness's allocator settings, as the suites' workers
    run: the JSON object its last line prints (``{form: {layer: median ms}}`` for the convolution checks)."""
    import os
    import subprocess
    import sys

    from snnbench.harness.allocator import worker_environ

    done = subprocess.run([sys.executable, "-m", module], cwd=ROOT, env=worker_environ(dict(os.environ)),
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def checked_in_worker(module: str, describe: Callable[[dict], str], within: Callable[[dict], bool]) -> dict:
    """:func:`worker_medians` of ``module``, its lines printed (``describe``), measured once more if outside
    the bound (:func:`remeasured`): the medians the check asserts on."""

    def measured():
        medians = worker_medians(module)
        print("\n" + describe(medians))
        return medians

    return remeasured(measured, within, lambda m: repr({f: {k: round(v, 1) for k, v in d.items()}
                                                        for f, d in m.items()}))
