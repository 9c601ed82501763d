"""The recurrent SHD network (``shd-rec-h128``) trained the way SpikingJelly's own recurrent example
trains, beside the snnbench adapter.

SpikingJelly's ``examples/rsnn_sequential_fmnist.py`` (``FeedBackNet``) writes a recurrent layer as
``layer.LinearRecurrentContainer(neuron, in_features, out_features)`` inside an ``nn.Sequential`` of
``layer.*`` modules, switches the net to multi-step mode with ``functional.set_step_mode(net, 'm')``
(the container's child stays single-step), feeds ``x_seq [T, B, C]`` and calls
``functional.reset_net(net)`` after every step. This file writes the suite's recurrent network that
way: ``LIFNode`` (soft reset, SuperSpike(1), detached reset) in the container with ``bias=False`` and
``rc.weight = [I | V]``, a ``NonSpikingLIFNode(decode='mean-mem')`` readout (its ``1 / (1 - beta)``
input scale folded into the last weight). As in the example, the whole container weight is trained
(the adapter holds the identity block fixed with a gradient hook, a cost it carries in this
comparison). It checks equal loss and gradients on one batch (``W`` and ``V``), then times one
training step (forward, backward, Adam) of each, alternately, in one process.

    python -m tests.benchmarks.idiomatic.spikingjelly_rec [--time-steps 128] [--batch 128] [--rounds 5]
"""

from __future__ import annotations

import numpy as np
import torch
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn

from snnbench.runners import get_runner_class
from snnbench.spec import init_weights

from .common import against_own_loop, parser, print_result, random_batch, rel_err, torch_env
from .rec_common import shd_rec_case


def sj_model(case) -> nn.Sequential:
    net = case.network
    n, lif, readout = net.sizes()[0], net.layers[1], net.layers[3]
    node = neuron.LIFNode(tau=1.0 / (1.0 - lif.beta), decay_input=False, v_threshold=lif.threshold, v_reset=None,
                          surrogate_function=surrogate.SuperSpike(alpha=1.0), detach_reset=True)
    model = nn.Sequential(layer.Linear(net.inputs, n, bias=False), layer.LinearRecurrentContainer(node, n, n, bias=False),
                          layer.Linear(n, net.outputs, bias=False),
                          neuron.NonSpikingLIFNode(tau=1.0 / (1.0 - readout.beta), decode="mean-mem"))
    functional.set_step_mode(model, "m")
    return model


def load(model: nn.Sequential, weights: dict[str, np.ndarray], readout_scale: float) -> None:
    with torch.no_grad():
        for i, scale in ((0, 1.0), (2, readout_scale)):
            model[i].weight.copy_(torch.as_tensor(weights[f"layers.{i}.weight"]) * scale)
        v = torch.as_tensor(weights["layers.1.recurrent"])
        model[1].rc.weight.copy_(torch.cat([torch.eye(len(v)), v], dim=1))


def own_step(model, optimizer, x, y):
    optimizer.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    functional.reset_net(model)
    return loss


def compare(time_steps: int = 128, batch: int = 128, rounds: int = 5, steps: int = 3) -> dict[str, float]:
    case = shd_rec_case(time_steps, batch, reset="subtract_decayed")
    weights = init_weights(case.network, 0)
    adapter = get_runner_class("spikingjelly")()
    adapter.build(case, "cpu", 0)
    adapter.set_weights(weights)
    scale = 1.0 / (1.0 - case.network.layers[3].beta)
    model = sj_model(case)
    load(model, weights, scale)
    optimizer = torch.optim.Adam(model.parameters(), lr=case.spec.lr)
    x, y = random_batch(case)
    xt, yt = torch.from_numpy(np.ascontiguousarray(np.swapaxes(x, 0, 1))), torch.from_numpy(y)
    got = adapter.forward_backward(x, y)
    loss = nn.functional.cross_entropy(model(xt), yt)
    loss.backward()
    functional.reset_net(model)
    n = case.network.sizes()[0]
    grads = {"layers.0.weight": model[0].weight.grad.numpy(), "layers.2.weight": model[2].weight.grad.numpy() * scale,
             "layers.1.recurrent": model[1].rc.weight.grad.numpy()[:, n:]}
    grad_err = max(rel_err(g, got.grads[k]) for k, g in grads.items())
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
