"""The SHD network trained the way Norse's own examples train, beside the snnbench Norse adapter.

Norse's README and tutorials build a stateful ``SequentialState`` of layers and cells and step it
through time, feeding ``x[ts]`` and carrying the state (``output, state = model(x[ts], state)``).
This file writes the suite's network that way (``nn.Linear`` and ``LIFBoxCell`` per step, an
``LIBoxCell`` readout), with the same two adaptations the adapter makes so that it computes the
canonical network: inputs scaled by ``1 / (1 - beta)`` and the canonical reset through Norse's
``reset_method`` hook. It checks that both give the same loss and gradients on one batch, then
times one training step (forward, backward, Adam) of each, alternately, in one process.

    python -m tests.benchmarks.idiomatic.norse_shd [--compile] [--time-steps 128] [--batch 128] [--rounds 5]

``--compile``: the ``norse-compile`` runner against Norse's loop under ``torch.compile`` (default
options; Norse's own initial state breaks the graph, which is how a Norse user meets it).

prints both medians and their ratio (adapter / Norse's loop; below 1: the adapter is faster).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from norse.torch import LIBoxCell, LIBoxParameters, LIFBoxCell, LIFBoxParameters, SequentialState
from torch import nn

from snnbench.runners import get_runner_class
from snnbench.runners.nets.norse_net import CanonicalReset, InputScale
from snnbench.spec import NetworkSpec, init_weights, parse_suite


def shd_case(time_steps: int = 128, batch: int = 128, hidden: int = 128, channels: int = 128):
    """The ``shd`` suite's network (two LIF layers, LI readout, SuperSpike slope 1)."""
    net = {"neuron": {"beta": 0.9, "threshold": 1.0}, "surrogate": {"name": "superspike", "slope": 1.0},
           "layers": [{"type": "linear", "out": hidden}, {"type": "lif"}, {"type": "linear", "out": hidden},
                      {"type": "lif"}, {"type": "linear", "out": 20}, {"type": "li"}]}
    return parse_suite({"suite": "norse-idiomatic", "defaults": {"time_steps": time_steps, "batch": batch,
                                                                  "channels": channels, "lr": 2e-3},
                        "network": net, "cases": [{"id": "shd"}]}, "norse-idiomatic.yaml").cases[0]


def norse_model(net: NetworkSpec) -> SequentialState:
    """One time step of the network, as Norse's examples build it: ``SequentialState`` of modules."""
    modules = []
    for i, (layer, n) in enumerate(zip(net.layers, net.sizes())):
        if layer.type == "linear":
            modules.append(nn.Linear(net.input_shapes()[i][0], n, bias=layer.bias))
            continue
        tau = torch.as_tensor(1.0 - layer.beta)
        modules.append(InputScale(1.0 / (1.0 - layer.beta)))
        if layer.type == "li":
            modules.append(LIBoxCell(LIBoxParameters(tau_mem_inv=tau), dt=1.0))
        else:
            p = LIFBoxParameters(tau_mem_inv=tau, v_th=torch.as_tensor(layer.threshold), v_reset=torch.as_tensor(0.0),
                                 method="super", alpha=torch.as_tensor(1.0),
                                 reset_method=CanonicalReset(layer.reset, layer.detach_reset, layer.beta))
            modules.append(LIFBoxCell(p, dt=1.0))
    return SequentialState(*modules)


def load_canonical(model: SequentialState, weights: dict[str, np.ndarray]) -> None:
    """Canonical ``layers.{i}.weight`` / ``bias`` into the ``nn.Linear`` modules, in order."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    keys = sorted({k.rsplit(".", 1)[0] for k in weights}, key=lambda k: int(k.split(".")[1]))
    with torch.no_grad():
        for lin, key in zip(linears, keys):
            lin.weight.copy_(torch.as_tensor(weights[f"{key}.weight"]))
            lin.bias.copy_(torch.as_tensor(weights[f"{key}.bias"]))


def norse_loss(model: SequentialState, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Norse's loop: the stateful model stepped over ``x [T, B, C]``; cross-entropy of the mean readout."""
    state, readout = None, []
    for ts in range(x.shape[0]):
        out, state = model(x[ts], state)
        readout.append(out)
    return nn.functional.cross_entropy(torch.stack(readout).mean(0), y)


def norse_step(model, optimizer, x, y) -> torch.Tensor:
    optimizer.zero_grad(set_to_none=True)
    loss = norse_loss(model, x, y)
    loss.backward()
    optimizer.step()
    return loss


def compare(time_steps: int = 128, batch: int = 128, rounds: int = 5, steps: int = 3,
            compiled: bool = False) -> dict[str, float]:
    """Both training steps on the same batches, checked equal first, then timed alternately."""
    case = shd_case(time_steps, batch)
    weights = init_weights(case.network, 0)
    adapter = get_runner_class("norse-compile" if compiled else "norse")()
    adapter.build(case, "cpu", 0)
    adapter.set_weights(weights)
    model = norse_model(case.network)
    load_canonical(model, weights)
    optimizer = torch.optim.Adam(model.parameters(), lr=case.spec.lr)
    rng = np.random.default_rng(0)
    x = (rng.random((time_steps, batch, case.network.inputs)) < 0.1).astype(np.float32)
    xt, yt = torch.from_numpy(x), torch.from_numpy(rng.integers(0, 20, batch))
    # The same network: the same loss and gradients before any step.
    got = adapter.forward_backward(np.swapaxes(x, 0, 1), yt.numpy())
    loss = norse_loss(model, xt, yt)
    loss.backward()
    linears = [m for m in model if isinstance(m, nn.Linear)]
    grad_err = max(float(np.abs(lin.weight.grad.numpy() - got.grads[f"layers.{i}.weight"]).max() /
                         (np.abs(got.grads[f"layers.{i}.weight"]).max() or 1.0))
                   for lin, i in zip(linears, (0, 2, 4)))
    model.zero_grad(set_to_none=True)
    run = torch.compile(model) if compiled else model
    if compiled:  # compile both before the clock (the adapter compiles in prepare_batch)
        adapter.prepare_batch(np.swapaxes(x, 0, 1), yt.numpy())
    times: dict[str, list[float]] = {"adapter": [], "norse": []}
    steppers = {"adapter": lambda: adapter.train_step(xt, yt), "norse": lambda: norse_step(run, optimizer, xt, yt)}
    for name in steppers:  # warm-up
        steppers[name]()
    for _ in range(rounds):
        for name, step in steppers.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            times[name].append((time.perf_counter() - t0) / steps)
    adapter_ms, norse_ms = 1e3 * float(np.median(times["adapter"])), 1e3 * float(np.median(times["norse"]))
    return {"adapter_ms": adapter_ms, "norse_ms": norse_ms, "ratio": adapter_ms / norse_ms,
            "loss_rel_err": abs(float(loss.detach()) - got.loss) / abs(got.loss), "grad_rel_err": grad_err,
            "adapter_samples_ms": [1e3 * t for t in times["adapter"]],
            "norse_samples_ms": [1e3 * t for t in times["norse"]]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--time-steps", type=int, default=128)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=3, help="training steps per timed sample")
    p.add_argument("--compile", action="store_true", help="norse-compile vs Norse's loop under torch.compile")
    args = p.parse_args(argv)
    r = compare(args.time_steps, args.batch, args.rounds, args.steps, args.compile)
    print(f"T={args.time_steps} B={args.batch}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"same network: loss rel err {r['loss_rel_err']:.1e}, weight grad rel err {r['grad_rel_err']:.1e}")
    print(f"training step, median of {args.rounds} alternated rounds x {args.steps} steps:")
    print(f"  snnbench norse adapter  {r['adapter_ms']:8.2f} ms   {' '.join(f'{t:.1f}' for t in r['adapter_samples_ms'])}")
    print(f"  Norse's own loop        {r['norse_ms']:8.2f} ms   {' '.join(f'{t:.1f}' for t in r['norse_samples_ms'])}")
    print(f"  adapter / Norse         {r['ratio']:8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
