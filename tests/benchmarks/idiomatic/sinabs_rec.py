"""The recurrent SHD network (``shd-rec-h128``) trained the way Sinabs' own layers are used, beside the
snnbench adapter.

Sinabs writes a recurrent spiking layer as ``sinabs.layers.LIFRecurrent(tau_mem, rec_connect=...)``,
``rec_connect`` any module applied to the layer's spikes and added to the next step's input; its docs use
an ``nn.Linear``. This file builds the suite's recurrent network that way in an ``nn.Sequential``:
``nn.Linear`` (no bias), ``LIFRecurrent`` with a bias-free ``nn.Linear(n, n)`` (``SingleSpike``,
``norm_input=False``, the canonical reset and surrogate through Sinabs' hooks, as in the adapter),
``nn.Linear`` (no bias), an ``ExpLeak`` readout, batch-major ``[B, T, C]``. Before each batch every
layer's ``reset_states()`` is called: ``sinabs.reset_states(model)`` (3.1.3) skips ``LIFRecurrent``,
whose ``rec_connect`` is a child module, so a user of Sinabs' helper would carry the membrane over
from the previous batch. It checks equal loss and gradients on one batch (``W`` and ``V``), then times
one training step (forward, backward, Adam) of each, alternately, in one process.

    python -m tests.benchmarks.idiomatic.sinabs_rec [--time-steps 128] [--batch 128] [--rounds 5]
"""

from __future__ import annotations

import sinabs.layers as sl
import torch
from sinabs.activation import SingleSpike
from torch import nn

from snnbench.runners import get_runner_class
from snnbench.runners.nets.sinabs_net import CanonicalReset, CanonicalSurrogate, tau_of
from snnbench.spec import init_weights

from .common import against_own_loop, parser, print_result, random_batch, rel_err, torch_env
from .rec_common import shd_rec_case


def sinabs_model(case) -> nn.Sequential:
    net = case.network
    n, lif, readout = net.sizes()[0], net.layers[1], net.layers[3]
    rec = sl.LIFRecurrent(tau_mem=tau_of(lif.beta), rec_connect=nn.Linear(n, n, bias=False),
                          spike_threshold=torch.tensor(lif.threshold), spike_fn=SingleSpike,
                          reset_fn=CanonicalReset("subtract", True, lif.beta),
                          surrogate_grad_fn=CanonicalSurrogate("superspike", 1.0), norm_input=False)
    model = nn.Sequential(nn.Linear(net.inputs, n, bias=False), rec, nn.Linear(n, net.outputs, bias=False),
                          sl.ExpLeak(tau_mem=tau_of(readout.beta), norm_input=False))
    for name, p in model.named_parameters():
        p.requires_grad_(name.endswith("weight"))
    return model


def own_loss(model, x, y):
    for m in model:
        if isinstance(m, sl.StatefulLayer):
            m.reset_states()
    return nn.functional.cross_entropy(model(x).mean(1), y)


def own_step(model, optimizer, x, y):
    optimizer.zero_grad(set_to_none=True)
    loss = own_loss(model, x, y)
    loss.backward()
    optimizer.step()
    return loss


def compare(time_steps: int = 128, batch: int = 128, rounds: int = 5, steps: int = 3) -> dict[str, float]:
    case = shd_rec_case(time_steps, batch)
    weights = init_weights(case.network, 0)
    adapter = get_runner_class("sinabs")()
    adapter.build(case, "cpu", 0)
    adapter.set_weights(weights)
    model = sinabs_model(case)
    with torch.no_grad():
        for i in (0, 2):
            model[i].weight.copy_(torch.as_tensor(weights[f"layers.{i}.weight"]))
        model[1].rec_connect.weight.copy_(torch.as_tensor(weights["layers.1.recurrent"]))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=case.spec.lr)
    x, y = random_batch(case)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    got = adapter.forward_backward(x, y)
    loss = own_loss(model, xt, yt)
    loss.backward()
    grads = {"layers.0.weight": model[0].weight.grad, "layers.2.weight": model[2].weight.grad,
             "layers.1.recurrent": model[1].rec_connect.weight.grad}
    grad_err = max(rel_err(g.numpy(), got.grads[k]) for k, g in grads.items())
    model.zero_grad(set_to_none=True)
    return against_own_loop(lambda: adapter.train_step(xt, yt), lambda: own_step(model, optimizer, xt, yt),
                            rounds, steps, own_loss=float(loss.detach()), adapter_loss=got.loss, grad_err=grad_err)


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__).parse_args(argv)
    r = compare(args.time_steps, args.batch, args.rounds, args.steps)
    print_result(r, args, "snnbench sinabs adapter (recurrent)", "Sinabs' own recurrent loop", torch_env())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
