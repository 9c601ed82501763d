"""The SHD network trained the way Sinabs' own tutorials train, beside the snnbench adapter.

Sinabs' examples build an ``nn.Sequential`` of ``nn.Linear`` and ``sinabs.layers.LIF`` (here with
``SingleSpike``, ``norm_input=False`` and an ``ExpLeak`` readout), feed batch-major ``[B, T, C]``,
and call ``sinabs.reset_states(model)`` before each batch. The canonical reset and surrogate go
through Sinabs' ``reset_fn`` / ``surrogate_grad_fn`` hooks, as in the adapter, so that both compute
the same network. It checks equal loss and gradients on one batch, then times one training step
(forward, backward, Adam) of each, alternately, in one process.

    python -m tests.benchmarks.idiomatic.sinabs_shd [--time-steps 128] [--batch 128] [--rounds 5]
"""

from __future__ import annotations

import sinabs
import sinabs.layers as sl
import torch
from sinabs.activation import SingleSpike
from torch import nn

from snnbench.runners import get_runner_class
from snnbench.runners.nets.sinabs_net import CanonicalReset, CanonicalSurrogate, tau_of
from snnbench.spec import init_weights

from .common import against_own_loop, parser, print_result, random_batch, rel_err, shd_case, torch_env


def sinabs_model(case) -> nn.Sequential:
    net, modules = case.network, []
    grad = CanonicalSurrogate("superspike", 1.0)
    for i, (spec, n) in enumerate(zip(net.layers, net.sizes())):
        if spec.type == "linear":
            modules.append(nn.Linear(net.input_shapes()[i][0], n))
        elif spec.type == "li":
            modules.append(sl.ExpLeak(tau_mem=tau_of(spec.beta)))
        else:
            modules.append(sl.LIF(tau_mem=tau_of(spec.beta), spike_threshold=torch.tensor(spec.threshold),
                                  spike_fn=SingleSpike, reset_fn=CanonicalReset("subtract", True, spec.beta),
                                  surrogate_grad_fn=grad, norm_input=False))
    model = nn.Sequential(*modules)
    for name, p in model.named_parameters():
        p.requires_grad_(name.endswith(("weight", "bias")))
    return model


def own_loss(model, x, y):
    sinabs.reset_states(model)
    return nn.functional.cross_entropy(model(x).mean(1), y)


def own_step(model, optimizer, x, y):
    optimizer.zero_grad(set_to_none=True)
    loss = own_loss(model, x, y)
    loss.backward()
    optimizer.step()
    return loss


def compare(time_steps: int = 128, batch: int = 128, rounds: int = 5, steps: int = 3) -> dict[str, float]:
    case = shd_case(time_steps, batch)
    weights = init_weights(case.network, 0)
    adapter = get_runner_class("sinabs")()
    adapter.build(case, "cpu", 0)
    adapter.set_weights(weights)
    model = sinabs_model(case)
    with torch.no_grad():
        for i in (0, 2, 4):
            model[i].weight.copy_(torch.as_tensor(weights[f"layers.{i}.weight"]))
            model[i].bias.copy_(torch.as_tensor(weights[f"layers.{i}.bias"]))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=case.spec.lr)
    x, y = random_batch(case)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    got = adapter.forward_backward(x, y)
    loss = own_loss(model, xt, yt)
    loss.backward()
    grad_err = max(rel_err(model[i].weight.grad.numpy(), got.grads[f"layers.{i}.weight"]) for i in (0, 2, 4))
    model.zero_grad(set_to_none=True)
    return against_own_loop(lambda: adapter.train_step(xt, yt), lambda: own_step(model, optimizer, xt, yt),
                            rounds, steps, own_loss=float(loss.detach()), adapter_loss=got.loss, grad_err=grad_err)


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__).parse_args(argv)
    r = compare(args.time_steps, args.batch, args.rounds, args.steps)
    print_result(r, args, "snnbench sinabs adapter", "Sinabs' own loop", torch_env())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
