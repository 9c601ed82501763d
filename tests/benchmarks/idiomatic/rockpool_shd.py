"""The SHD network trained the way Rockpool's own tutorials train, beside the snnbench adapter.

Rockpool's torch tutorials compose modules with ``rockpool.nn.combinators.Sequential``
(``LinearTorch`` weights, ``[in, out]``, and neuron modules), call ``net(x)`` on batch-major
``[B, T, C]`` data to get ``(output, state, record)``, and reset the network's state between
batches (``net.reset_state()``). This file writes the suite's network that way: ``LIFNeuronTorch``
with one spike per step and the canonical surrogate through its ``spike_generation_fn`` hook, an
``ExpSynTorch`` readout (its ``1 / beta`` input scale folded into the last weight). Rockpool
computes the ``subtract_decayed`` reset with an attached gradient, as the adapter does. It checks
equal loss and gradients on one batch, then times one training step (forward, backward, Adam) of
each, alternately, in one process.

    python -m tests.benchmarks.idiomatic.rockpool_shd [--time-steps 128] [--batch 128] [--rounds 5]
"""

from __future__ import annotations

import math
import os

import torch
from torch import nn

os.environ["PIP_NO_INDEX"] = "1"  # see snnbench.runners.base.guarded_import
from rockpool.nn.combinators import Sequential  # noqa: E402
from rockpool.nn.modules import ExpSynTorch, LIFNeuronTorch, LinearTorch  # noqa: E402

from snnbench.runners import get_runner_class  # noqa: E402
from snnbench.runners.nets.rockpool_net import DT, CanonicalSpike  # noqa: E402
from snnbench.spec import init_weights  # noqa: E402

from .common import against_own_loop, parser, print_result, random_batch, rel_err, shd_case, torch_env  # noqa: E402


def rockpool_model(case):
    net, modules = case.network, []
    for i, (spec, n) in enumerate(zip(net.layers, net.sizes())):
        if spec.type == "linear":
            modules.append(LinearTorch((net.input_shapes()[i][0], n), has_bias=True))
        elif spec.type == "li":
            modules.append(ExpSynTorch(n, tau=-DT / math.log(spec.beta), dt=DT))
        else:
            modules.append(LIFNeuronTorch(n, tau_mem=-DT / math.log(spec.beta), threshold=spec.threshold, dt=DT,
                                          spike_generation_fn=CanonicalSpike("superspike", 1.0), max_spikes_per_dt=1))
    model = Sequential(*modules)
    for name, p in model.named_parameters():
        p.requires_grad_(name.endswith(("weight", "bias")) and name.split("_")[0] in ("0", "2", "4"))
    return model


def linears(model) -> list:
    return [m for m in nn.Module.modules(model) if isinstance(m, LinearTorch)]  # Rockpool's modules() is a dict


def own_loss(model, x, y):
    model.reset_state()
    out, _, _ = model(x)
    return nn.functional.cross_entropy(out.mean(1), y)


def own_step(model, optimizer, x, y):
    optimizer.zero_grad(set_to_none=True)
    loss = own_loss(model, x, y)
    loss.backward()
    optimizer.step()
    return loss


def compare(time_steps: int = 128, batch: int = 128, rounds: int = 5, steps: int = 3) -> dict[str, float]:
    case = shd_case(time_steps, batch)
    weights = init_weights(case.network, 0)
    adapter = get_runner_class("rockpool")()
    adapter.build(case, "cpu", 0)
    adapter.set_weights(weights)
    model = rockpool_model(case)
    scale = 1.0 / case.network.layers[5].beta
    with torch.no_grad():
        for lin, i in zip(linears(model), (0, 2, 4)):
            s = scale if i == 4 else 1.0
            lin.weight.copy_(torch.as_tensor(weights[f"layers.{i}.weight"]).T * s)
            lin.bias.copy_(torch.as_tensor(weights[f"layers.{i}.bias"]) * s)
    trainable = [p for _, p in model.named_parameters() if p.requires_grad]  # Rockpool's parameters() is a dict
    assert len(trainable) == 6, [n for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=case.spec.lr)
    x, y = random_batch(case)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    got = adapter.forward_backward(x, y)
    loss = own_loss(model, xt, yt)
    loss.backward()
    grad_err = max(rel_err(lin.weight.grad.numpy().T * (scale if i == 4 else 1.0), got.grads[f"layers.{i}.weight"])
                   for lin, i in zip(linears(model), (0, 2, 4)))
    optimizer.zero_grad(set_to_none=True)
    return against_own_loop(lambda: adapter.train_step(xt, yt), lambda: own_step(model, optimizer, xt, yt),
                            rounds, steps, own_loss=float(loss.detach()), adapter_loss=got.loss, grad_err=grad_err)


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__).parse_args(argv)
    r = compare(args.time_steps, args.batch, args.rounds, args.steps)
    print_result(r, args, "snnbench rockpool adapter", "Rockpool's own loop", torch_env())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
