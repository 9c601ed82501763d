"""What the idiomatic-loop comparisons share: the ``shd`` suite's network as a case, one random
batch, a check that the two implementations compute the same loss and gradients, and alternated
timing of two training steps in one process (so that machine noise hits both alike)."""

from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np

from snnbench.spec import parse_suite


def shd_case(time_steps: int = 128, batch: int = 128, hidden: int = 128, channels: int = 128,
             neuron: str = "lif", **neuron_fields):
    """The ``shd`` suite's network (two LIF layers, LI readout, SuperSpike slope 1, detached reset);
    ``neuron`` and ``neuron_fields`` change the hidden layers' type and defaults (e.g. ``cuba_lif``)."""
    net = {"neuron": {"beta": 0.9, "threshold": 1.0, **neuron_fields},
           "surrogate": {"name": "superspike", "slope": 1.0},
           "layers": [{"type": "linear", "out": hidden}, {"type": neuron}, {"type": "linear", "out": hidden},
                      {"type": neuron}, {"type": "linear", "out": 20}, {"type": "li"}]}
    return parse_suite({"suite": "idiomatic", "defaults": {"time_steps": time_steps, "batch": batch,
                                                            "channels": channels, "lr": 2e-3},
                        "network": net, "cases": [{"id": "shd"}]}, "idiomatic.yaml").cases[0]


def shd_rec_case(time_steps: int = 128, batch: int = 128, hidden: int = 128, channels: int = 128, **neuron_fields):
    """The ``shd`` suite's ``shd-rec-h128`` network: one recurrent hidden LIF layer (``V`` of ``hidden x hidden``),
    no biases, LI readout, SuperSpike slope 1, subtract reset detached; ``neuron_fields`` change the neuron."""
    net = {"neuron": {"beta": 0.9, "threshold": 1.0, **neuron_fields}, "surrogate": {"name": "superspike", "slope": 1.0},
           "layers": [{"type": "linear", "out": hidden, "bias": False}, {"type": "lif", "recurrent": True},
                      {"type": "linear", "out": 20, "bias": False}, {"type": "li"}]}
    return parse_suite({"suite": "idiomatic", "defaults": {"time_steps": time_steps, "batch": batch,
                                                            "channels": channels, "lr": 2e-3},
                        "network": net, "cases": [{"id": "shd-rec"}]}, "idiomatic.yaml").cases[0]


def random_batch(case, seed: int = 0, rate: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Bernoulli spikes ``[B, T, C]`` float32 and labels ``[B]``."""
    rng = np.random.default_rng(seed)
    s = case.spec
    x = (rng.random((s.batch, s.time_steps, case.network.inputs)) < rate).astype(np.float32)
    return x, rng.integers(0, 20, s.batch)


def rel_err(got: float | np.ndarray, want: float | np.ndarray) -> float:
    want = np.asarray(want, np.float64)
    return float(np.abs(np.asarray(got, np.float64) - want).max() / (np.abs(want).max() or 1.0))


def alternate(steppers: dict[str, Callable[[], object]], rounds: int, steps: int,
              sync: Callable[[object], None] = lambda _: None) -> dict[str, list[float]]:
    """Seconds per call of each stepper, ``rounds`` samples of ``steps`` calls, the steppers taking
    turns within each round; one warm-up call each first. ``sync`` waits for a call's result."""
    for step in steppers.values():
        sync(step())
    times: dict[str, list[float]] = {name: [] for name in steppers}
    for _ in range(rounds):
        for name, step in steppers.items():
            t0 = time.perf_counter()
            out = None
            for _ in range(steps):
                out = step()
            sync(out)
            times[name].append((time.perf_counter() - t0) / steps)
    return times


def summarize(times: dict[str, list[float]], adapter: str = "adapter", own: str = "own") -> dict[str, float]:
    a, o = 1e3 * float(np.median(times[adapter])), 1e3 * float(np.median(times[own]))
    return {"adapter_ms": a, "own_ms": o, "ratio": a / o,
            "adapter_samples_ms": [1e3 * t for t in times[adapter]], "own_samples_ms": [1e3 * t for t in times[own]]}


def against_own_loop(adapter_step: Callable[[], object], own_step: Callable[[], object], rounds: int, steps: int,
                     *, own_loss: float, adapter_loss: float, grad_err: float) -> dict[str, float]:
    """Time the adapter's and the framework's training steps alternately (:func:`alternate`) and
    return :func:`summarize`'s figures with how far the two networks' loss and gradients differ."""
    times = alternate({"adapter": adapter_step, "own": own_step}, rounds, steps)
    return {**summarize(times), "loss_rel_err": rel_err(own_loss, adapter_loss), "grad_rel_err": grad_err}


def torch_env() -> str:
    import torch

    return f"torch {torch.__version__}, {torch.get_num_threads()} threads"


def parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--time-steps", type=int, default=128)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=3, help="training steps per timed sample")
    return p


def print_result(r: dict[str, float], args: argparse.Namespace, adapter: str, own: str, env: str) -> None:
    print(f"T={args.time_steps} B={args.batch}, {env}")
    print(f"same network: loss rel err {r['loss_rel_err']:.1e}, weight grad rel err {r['grad_rel_err']:.1e}")
    print(f"training step, median of {args.rounds} alternated rounds x {args.steps} steps:")
    print(f"  {adapter:<34} {r['adapter_ms']:8.2f} ms   {' '.join(f'{t:.1f}' for t in r['adapter_samples_ms'])}")
    print(f"  {own:<34} {r['own_ms']:8.2f} ms   {' '.join(f'{t:.1f}' for t in r['own_samples_ms'])}")
    print(f"  {'adapter / own loop':<34} {r['ratio']:8.3f}   (above 1.10: the adapter is too slow)")


def per_epoch_main(doc: str, compare: Callable[..., dict[str, float]], adapter: str, own: str,
                   argv: list[str] | None = None) -> int:
    """Command line of a per-epoch comparison (the JAX frameworks'): ``compare(time_steps, batch,
    rounds, steps, batches)`` with one epoch per timed sample, printed with :func:`print_result`."""
    import jax

    p = parser(doc)
    p.add_argument("--batches", type=int, default=16, help="batches per epoch")
    args = p.parse_args(argv)
    args.steps = 1
    r = compare(args.time_steps, args.batch, args.rounds, 1, args.batches)
    print_result(r, args, adapter, own, f"jax {jax.__version__}, {jax.devices()[0].platform}")
    return 0
