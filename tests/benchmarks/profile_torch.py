"""Per-op profile of a PyTorch runner's training step, beside ``profile_reference`` (docs/reference-performance.md).

    python -m tests.benchmarks.profile_torch nmnist-m1-B32 [--runner torch] [--suite nmnist] [--full] [--top 12]

Builds the runner (``torch``, ``norse``, ``norse-compile``, ... any runner of the registry that runs on
PyTorch) on a suite case (the quick profile unless ``--full``), times its gradient step ``fwdbwd_step``
(median of 7 calls after 3), then records 5 steps with ``torch.profiler`` and prints the ops by self CPU
time per step (an op's time less its children's, so nothing is counted twice), grouped by name and input
shapes, which tell the layers apart. The profiler's own cost shows as the profiled step's wall time
against the unprofiled one; both are printed. oneDNN's and OpenMP's worker threads record nothing: an
op's time is the calling thread's, from its start to its end.

Run it under the harness's allocator settings (:mod:`snnbench.harness.allocator`); it re-starts itself
with them when they are missing (without them PyTorch maps and zero-fills its large tensors on every
step). Not a test: a tool for reading where the time goes."""

from __future__ import annotations

import argparse
import time

import numpy as np

STEPS = 5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("case")
    ap.add_argument("--runner", default="torch")
    ap.add_argument("--suite", default="nmnist")
    ap.add_argument("--full", action="store_true", help="the suite's full size, not its quick profile")
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()

    from snnbench.harness.allocator import ensure_worker_environ

    ensure_worker_environ("tests.benchmarks.profile_torch")

    from torch.profiler import ProfilerActivity, profile

    from snnbench.runners import get_runner_class
    from snnbench.spec import load_suite

    case = {c.spec.id: c for c in load_suite(args.suite, quick=not args.full).cases}[args.case]
    runner = get_runner_class(args.runner)()
    runner.build(case, "cpu", 0)
    T, B, C = case.network.time_steps, case.spec.batch, case.network.inputs
    rng = np.random.default_rng(0)
    batch = runner.prepare_batch((rng.random((B, T, C)) < 0.05).astype(np.float32),
                                 rng.integers(0, case.network.classes, B))

    def step() -> None:
        runner.barrier(runner.fwdbwd_step(batch))

    for _ in range(3):
        step()
    seconds = []
    for _ in range(7):
        t0 = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - t0)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        t0 = time.perf_counter()
        for _ in range(STEPS):
            step()
        profiled = (time.perf_counter() - t0) / STEPS
    rows = prof.key_averages(group_by_input_shape=True)
    total = sum(e.self_cpu_time_total for e in rows) / STEPS / 1e3
    print(f"{args.runner} {args.case}: training step (fwd+bwd) median {1e3 * np.median(seconds):.1f} ms "
          f"(min {1e3 * min(seconds):.1f}, 7 calls); under the profiler {1e3 * profiled:.1f} ms per step")
    print(f"self time per step {total:.1f} ms (the profiler's own cost included)")
    for e in sorted(rows, key=lambda e: -e.self_cpu_time_total)[:args.top]:
        ms = e.self_cpu_time_total / STEPS / 1e3
        shapes = ", ".join(str(s) for s in e.input_shapes if s)[:70]
        print(f"  {ms:7.1f} ms {100 * ms / total:5.1f}% {e.count // STEPS:4d}x  {e.key[:34]:34s} {shapes}")


if __name__ == "__main__":
    main()
