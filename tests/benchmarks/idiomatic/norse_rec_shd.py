"""The recurrent SHD network (``shd-rec-h128``) trained the way Norse's examples train a recurrent SNN,
beside the snnbench Norse adapter (``--compile``: ``norse-compile`` against Norse's loop compiled).

Norse's examples build a stateful ``SequentialState`` and step it through time, feeding ``x[ts]`` and
carrying the state; a recurrent layer is ``LIFRecurrentCell(input_size, hidden_size, p)``, which holds
the input and the recurrent weights itself. This file writes the suite's recurrent network that way:
``LIFRecurrentCell(autapses=True)`` (Norse's default drops V's diagonal), then ``nn.Linear`` and an
``LIBoxCell`` readout. As a Norse user would, it trains the cell's own weights, here
``W / (1 - beta)`` and ``V / (1 - beta)`` so that Norse's Euler step adds exactly the canonical current
(``tau_mem_inv = 1 - beta``, ``dt = 1``); the adapter holds the canonical weights and scales them once
per sequence. Norse's recurrent cell resets to zero, so both compute the spec's network with a zero
reset (the adapter's declared deviation). Equal loss and gradients are checked on one batch, then
one training step (forward, backward, Adam) of each is timed, alternately.

    python -m tests.benchmarks.idiomatic.norse_rec_shd [--compile] [--time-steps 128] [--batch 128] [--rounds 5]
"""

from __future__ import annotations

import numpy as np
import torch
from norse.torch import LIBoxCell, LIBoxParameters, LIFParameters, LIFRecurrentCell, SequentialState
from torch import nn

from snnbench.runners import get_runner_class
from snnbench.runners.nets.norse_net import InputScale
from snnbench.spec import init_weights

from .common import against_own_loop, parser, print_result, random_batch, rel_err, shd_rec_case, torch_env

BETA = 0.9


def norse_model(inputs: int, hidden: int, outputs: int) -> SequentialState:
    """One time step of the recurrent network, as Norse's examples build it."""
    p = LIFParameters(tau_syn_inv=torch.as_tensor(1.0), tau_mem_inv=torch.as_tensor(1.0 - BETA),
                      v_leak=torch.as_tensor(0.0), v_th=torch.as_tensor(1.0), v_reset=torch.as_tensor(0.0),
                      method="super", alpha=torch.as_tensor(1.0))
    return SequentialState(LIFRecurrentCell(inputs, hidden, p, autapses=True, dt=1.0),
                           nn.Linear(hidden, outputs, bias=False), InputScale(1.0 / (1.0 - BETA)),
                           LIBoxCell(LIBoxParameters(tau_mem_inv=torch.as_tensor(1.0 - BETA)), dt=1.0))


def load_canonical(model: SequentialState, weights: dict[str, np.ndarray]) -> None:
    cell, readout = model[0], model[1]
    with torch.no_grad():
        cell.input_weights.copy_(torch.as_tensor(weights["layers.0.weight"] / (1.0 - BETA)))
        cell.recurrent_weights.copy_(torch.as_tensor(weights["layers.1.recurrent"] / (1.0 - BETA)))
        readout.weight.copy_(torch.as_tensor(weights["layers.2.weight"]))


def canonical_grads(model: SequentialState) -> dict[str, np.ndarray]:
    """The cell's gradients as the canonical weights' (``W' = W / (1 - beta)``: ``dL/dW = dL/dW' / (1 - beta)``)."""
    cell, readout = model[0], model[1]
    return {"layers.0.weight": cell.input_weights.grad.numpy() / (1.0 - BETA),
            "layers.1.recurrent": cell.recurrent_weights.grad.numpy() / (1.0 - BETA),
            "layers.2.weight": readout.weight.grad.numpy()}


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
    case = shd_rec_case(time_steps, batch)
    weights = init_weights(case.network, 0)
    adapter = get_runner_class("norse-compile" if compiled else "norse")()
    adapter.build(case, "cpu", 0)
    adapter.set_weights(weights)
    model = norse_model(case.network.inputs, 128, 20)
    load_canonical(model, weights)
    optimizer = torch.optim.Adam(model.parameters(), lr=case.spec.lr)
    x, y = random_batch(case)
    xt, yt = torch.from_numpy(np.ascontiguousarray(np.swapaxes(x, 0, 1))), torch.from_numpy(y)
    got = adapter.forward_backward(x, y)
    loss = norse_loss(model, xt, yt)
    loss.backward()
    grad_err = max(rel_err(g, got.grads[k]) for k, g in canonical_grads(model).items())
    model.zero_grad(set_to_none=True)
    run = torch.compile(model) if compiled else model
    if compiled:  # compile both before the clock (the adapter compiles in prepare_batch)
        adapter.prepare_batch(x, y)
        norse_step(run, optimizer, xt, yt)
    return against_own_loop(lambda: adapter.train_step(xt, yt), lambda: norse_step(run, optimizer, xt, yt),
                            rounds, steps, own_loss=float(loss.detach()), adapter_loss=got.loss, grad_err=grad_err)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--compile", action="store_true", help="norse-compile vs Norse's loop under torch.compile")
    args = p.parse_args(argv)
    r = compare(args.time_steps, args.batch, args.rounds, args.steps, args.compile)
    suffix = " (torch.compile)" if args.compile else ""
    print_result(r, args, f"snnbench norse{'-compile' if args.compile else ''} adapter (LIFRecurrentCell)",
                 f"Norse's own recurrent loop{suffix}", torch_env())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
