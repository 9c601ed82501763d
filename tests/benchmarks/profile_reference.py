"""Per-op profile of the reference's training step as its epoch runs it (docs/reference-performance.md).

    python -m tests.benchmarks.profile_reference nmnist-m1-B32 [--suite nmnist] [--full] [--steps 8] [--top 12]

Builds the reference on a suite case (the quick profile unless ``--full``), compiles its gradient step
``--steps`` times in one program (``fwdbwd_steps``: the form the epoch runs, temporaries allocated once
per call, so no per-call page faults), times it (median of 5 calls, ms per step), then traces 2 calls
with ``jax.profiler``. It prints the leaf XLA ops (thunks; loop and executor spans left out so nothing is
counted twice) per step, summed by spec layer and direction (the HLO's ``jvp(layerN)`` /
``transpose(jvp(layerN))`` metadata: forward / backward), then the top ops with the JAX operation each
came from. Leaf-op time is thread time: on two cores it can exceed the step. A GEMM that XLA:CPU hands
to Eigen leaves no trace event. ``profile_torch`` prints the same network's PyTorch profile.

Run it under the harness's allocator settings (:mod:`snnbench.harness.allocator`); it re-starts
itself with them when they are missing. Not a test: a tool for reading where the time goes."""

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
LAYER = re.compile(r"(transpose\()?jvp\((layer(\d+))?\)")


def group_of(op_name: str, layers) -> str:
    """``op_name`` (an HLO op's JAX metadata) -> ``"fwd layer3 conv2d"``, ``"bwd layer1 lif"``, or
    ``"fwd (no module: pooling, loss)"`` for differentiated code outside a Haiku module, ``"other"``."""
    m = LAYER.search(op_name)
    if m is None:
        return "other (optimizer, loop, data)"
    side = "bwd" if m.group(1) else "fwd"
    if m.group(3) is None:
        return f"{side} (no module: pooling, loss)"
    i = int(m.group(3))
    return f"{side} layer{i} {layers[i].type}"


def leaf_ops(trace_dir: str, per: float) -> collections.Counter:
    """Leaf-op time in ms, divided by ``per``, by XLA op name, from a ``jax.profiler`` trace."""
    events = json.load(gzip.open(glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True)[0]))["traceEvents"]
    ops: collections.Counter[str] = collections.Counter()
    for event in events:
        name = event.get("name", "")
        if event.get("ph") == "X" and "dur" in event and not name.startswith(WRAPPERS):
            ops[name] += event["dur"] / 1e3 / per
    return ops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("case")
    ap.add_argument("--suite", default="nmnist")
    ap.add_argument("--full", action="store_true", help="the suite's full size, not its quick profile")
    ap.add_argument("--steps", type=int, default=8, help="gradient steps in the one program timed")
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()

    from snnbench.harness.allocator import ensure_worker_environ

    ensure_worker_environ("tests.benchmarks.profile_reference")

    import jax

    from snnbench.runners.reference.runner import ReferenceRunner
    from snnbench.spec import load_suite

    case = {c.spec.id: c for c in load_suite(args.suite, quick=not args.full).cases}[args.case]
    runner = ReferenceRunner()
    runner.build(case, "cpu", 0)
    K, T, B, C = args.steps, case.network.time_steps, case.spec.batch, case.network.inputs
    rng = np.random.default_rng(0)
    batches = runner.prepare_batches((rng.random((K, B, T, C)) < 0.05).astype(np.float32),
                                     rng.integers(0, case.network.classes, (K, B)))
    runner.precompile_steps(batches, "fwdbwd")
    program = runner._steps_program("fwdbwd", batches)
    origin = {m.group(1): m.group(2)
              for m in re.finditer(r'%([\w.\-]+) = [^\n]*?metadata=\{op_name="([^"]+)"', program.as_text())}
    for _ in range(2):
        runner.barrier(runner.fwdbwd_steps(batches))
    seconds = []
    for _ in range(5):
        t0 = time.perf_counter()
        runner.barrier(runner.fwdbwd_steps(batches))
        seconds.append((time.perf_counter() - t0) / K)
    print(f"{args.case}: training step (fwd+bwd, {K} in one program) median {1e3 * np.median(seconds):.1f} ms "
          f"(min {1e3 * min(seconds):.1f}, 5 calls)")
    calls = 2
    with tempfile.TemporaryDirectory() as trace_dir:
        jax.profiler.start_trace(trace_dir)
        for _ in range(calls):
            runner.barrier(runner.fwdbwd_steps(batches))
        jax.profiler.stop_trace()
        ops = leaf_ops(trace_dir, calls * K)
    total = sum(ops.values())
    print(f"leaf-op time per step {total:.1f} ms (thread time: two threads can both count)")
    if total < 0.8 * 1e3 * np.median(seconds):
        print("  (short of the step: an op that leaves no trace event is missing, e.g. a GEMM XLA:CPU hands to "
              "Eigen, as the weight gradient x^T g before reference/dense.py)")
    groups: collections.Counter[str] = collections.Counter()
    for name, ms in ops.items():
        groups[group_of(origin.get(name, ""), case.network.layers)] += ms
    print("by layer:")
    for group, ms in groups.most_common():
        if ms >= 0.05:
            print(f"  {ms:7.1f} ms {100 * ms / total:5.1f}%  {group}")
    print("top ops:")
    for name, ms in ops.most_common(args.top):
        where = origin.get(name, "").replace("jit(run)/", "").replace("while/body/closed_call/", "")
        print(f"  {ms:7.1f} ms {100 * ms / total:5.1f}%  {name[:38]:38s} {where[-90:]}")


if __name__ == "__main__":
    main()
