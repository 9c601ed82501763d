"""The SHD network trained the way SpikingJelly's own tutorials train, beside the snnbench adapter.

SpikingJelly's examples build an ``nn.Sequential`` of ``layer.*`` modules and ``neuron.LIFNode``,
switch it to multi-step mode with ``functional.set_step_mode(net, 'm')``, feed ``x_seq [T, B, C]``,
take the readout's time-mean (``NonSpikingLIFNode(decode='mean-mem')``) into the loss, and call
``functional.reset_net(net)`` after every step. This file writes the suite's network that way
(soft reset, SuperSpike(1), detached reset; the readout's ``1 / (1 - beta)`` input scale folded into
the last weight). It checks that both give the same loss and gradients on one batch, then times
one training step (forward, backward, Adam) of each, alternately, in one process.

    python -m tests.benchmarks.idiomatic.spikingjelly_shd [--time-steps 128] [--batch 128] [--rounds 5]
"""

from __future__ import annotations

import numpy as np
import torch
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn

from snnbench.runners import get_runner_class
from snnbench.spec import init_weights

from .common import against_own_loop, parser, print_result, random_batch, rel_err, shd_case, torch_env


def sj_model(case) -> nn.Sequential:
    net, modules = case.network, []
    for i, (spec, n) in enumerate(zip(net.layers, net.sizes())):
        if spec.type == "linear":
            modules.append(layer.Linear(net.input_shapes()[i][0], n))
        elif spec.type == "li":
            modules.append(neuron.NonSpikingLIFNode(tau=1.0 / (1.0 - spec.beta), decode="mean-mem"))
        else:
            modules.append(neuron.LIFNode(tau=1.0 / (1.0 - spec.beta), decay_input=False, v_threshold=spec.threshold,
                                          v_reset=None, surrogate_function=surrogate.SuperSpike(alpha=1.0),
                                          detach_reset=True))
    model = nn.Sequential(*modules)
    functional.set_step_mode(model, "m")
    return model


def load(model: nn.Sequential, weights: dict[str, np.ndarray], readout_scale: float) -> None:
    with torch.no_grad():
        for i in (0, 2, 4):
            scale = readout_scale if i == 4 else 1.0
            model[i].weight.copy_(torch.as_tensor(weights[f"layers.{i}.weight"]) * scale)
            model[i].bias.copy_(torch.as_tensor(weights[f"layers.{i}.bias"]) * scale)


def own_step(model, optimizer, x, y):
    optimizer.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    functional.reset_net(model)
    return loss


def compare(time_steps: int = 128, batch: int = 128, rounds: int = 5, steps: int = 3) -> dict[str, float]:
    case = shd_case(time_steps, batch)
    weights = init_weights(case.network, 0)
    adapter = get_runner_class("spikingjelly")()
    adapter.build(case, "cpu", 0)
    adapter.set_weights(weights)
    scale = 1.0 / (1.0 - case.network.layers[5].beta)
    model = sj_model(case)
    load(model, weights, scale)
    optimizer = torch.optim.Adam(model.parameters(), lr=case.spec.lr)
    x, y = random_batch(case)
    xt, yt = torch.from_numpy(np.ascontiguousarray(np.swapaxes(x, 0, 1))), torch.from_numpy(y)
    got = adapter.forward_backward(x, y)
    loss = nn.functional.cross_entropy(model(xt), yt)
    loss.backward()
    functional.reset_net(model)
    grad_err = max(rel_err(model[i].weight.grad.numpy() * (scale if i == 4 else 1.0), got.grads[f"layers.{i}.weight"])
                   for i in (0, 2, 4))
    model.zero_grad(set_to_none=True)
    return against_own_loop(lambda: adapter.train_step(xt, yt), lambda: own_step(model, optimizer, xt, yt),
                            rounds, steps, own_loss=float(loss.detach()), adapter_loss=got.loss, grad_err=grad_err)


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__).parse_args(argv)
    r = compare(args.time_steps, args.batch, args.rounds, args.steps)
    print_result(r, args, "snnbench spikingjelly adapter", "SpikingJelly's own loop", torch_env())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
