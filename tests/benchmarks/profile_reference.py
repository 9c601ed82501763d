"""Per-op profile of the reference's compiled gradient step (docs/reference-performance.md).

    python -m tests.benchmarks.profile_reference nmnist-m1-B32 [--suite nmnist] [--full] [--top 8]

Builds the reference on a suite case (the quick profile unless ``--full``), times its gradient step
(median of 7 calls), then traces 5 calls with ``jax.profiler`` and prints the leaf XLA ops (thunks; loop
and executor spans left out so nothing is counted twice) by time per step, with their share and the JAX
operation each came from (the compiled HLO's metadata). Not a test: a tool for reading where the time goes."""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import re
import tempfile
import time

import numpy as np

WRAPPERS = ("while", "Thunk", "$", "Pjit", "Slinky", "conditional", "call")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("case")
    ap.add_argument("--suite", default="nmnist")
    ap.add_argument("--full", action="store_true", help="the suite's full size, not its quick profile")
    ap.add_argument("--top", type=int, default=8)
    args = ap.parse_args()

    import jax

    from snnbench.runners.reference.runner import ReferenceRunner
    from snnbench.spec import load_suite

    cases = {c.spec.id: c for c in load_suite(args.suite, quick=not args.full).cases}
    case = cases[args.case]
    runner = ReferenceRunner()
    runner.build(case, "cpu", 0)
    rng = np.random.default_rng(0)
    x = jax.numpy.asarray((rng.random((case.network.time_steps, case.spec.batch, case.network.inputs)) < 0.05)
                          .astype(np.float32))
    y = jax.numpy.asarray(rng.integers(0, case.network.classes, case.spec.batch))
    step = jax.jit(jax.grad(lambda p, x, y: runner.loss_fn(p, x, y)[0]))
    hlo = step.lower(runner.params, x, y).compile().as_text()
    origin = {m.group(1): m.group(2) for m in re.finditer(r'%([\w.\-]+) = [^\n]*?metadata=\{op_name="([^"]+)"', hlo)}
    jax.block_until_ready(step(runner.params, x, y))
    seconds = []
    for _ in range(7):
        t0 = time.perf_counter()
        jax.block_until_ready(step(runner.params, x, y))
        seconds.append(time.perf_counter() - t0)
    print(f"{args.case}: gradient step median {1e3 * np.median(seconds):.1f} ms (min {1e3 * min(seconds):.1f}, 7 calls)")
    calls = 5
    with tempfile.TemporaryDirectory() as trace_dir:
        jax.profiler.start_trace(trace_dir)
        for _ in range(calls):
            jax.block_until_ready(step(runner.params, x, y))
        jax.profiler.stop_trace()
        events = json.load(gzip.open(glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True)[0]))["traceEvents"]
    per_op: collections.Counter[str] = collections.Counter()
    for event in events:
        name = event.get("name", "")
        if event.get("ph") == "X" and "dur" in event and not name.startswith(WRAPPERS):
            per_op[name] += event["dur"] / 1e3 / calls
    total = sum(per_op.values())
    print(f"leaf-op time per step {total:.1f} ms")
    if total < 0.8 * 1e3 * np.median(seconds):
        print("  (short of the step: an op that leaves no trace event is missing, e.g. a GEMM XLA:CPU hands to "
              "Eigen, as the weight gradient x^T g before reference/dense.py)")
    for name, ms in per_op.most_common(args.top):
        where = origin.get(name, "").replace("jit(<lambda>)/", "")
        print(f"  {ms:7.1f} ms {100 * ms / total:5.1f}%  {name[:38]:38s} {where[:90]}")


if __name__ == "__main__":
    main()
