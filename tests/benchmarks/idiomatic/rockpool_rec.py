"""The recurrent SHD network (``shd-rec-h128``) trained the way Rockpool's own tutorials train, beside
the snnbench adapter.

Rockpool's torch tutorials compose modules with ``rockpool.nn.combinators.Sequential`` (``LinearTorch``
weights ``[in, out]``), make a layer recurrent with ``LIFTorch(..., has_rec=True)`` (its ``w_rec``
``[from, to]`` trained with the rest), call ``net(x)`` on batch-major ``[B, T, C]`` data to get
``(output, state, record)`` and reset the state between batches (``net.reset_state()``). This file
writes the suite's recurrent network that way, with ``LIFTorch`` configured as the adapter configures
it to be the synapse-free canonical layer (synaptic decay and threshold scaled by ``2^-32``, one spike
per step, the canonical surrogate through ``spike_generation_fn``: see
:func:`snnbench.runners.nets.rockpool_net.recurrent_lif`) and an ``ExpSynTorch`` readout (its
``1 / beta`` input scale folded into the last weight). Rockpool computes the ``subtract_decayed``
reset with an attached gradient, as the adapter does. It checks equal loss and gradients on one batch
(``W`` and ``V``), then times one training step (forward, backward, Adam) of each, alternately.

    python -m tests.benchmarks.idiomatic.rockpool_rec [--time-steps 128] [--batch 128] [--rounds 5]
"""

from __future__ import annotations

import math
import os

import torch
from torch import nn

os.environ["PIP_NO_INDEX"] = "1"  # see snnbench.runners.base.guarded_import
from rockpool.nn.combinators import Sequential  # noqa: E402
from rockpool.nn.modules import ExpSynTorch, LIFTorch, LinearTorch  # noqa: E402

from snnbench.runners import get_runner_class  # noqa: E402
from snnbench.runners.nets.rockpool_net import DT, REC_SCALE, ScaledSpike  # noqa: E402
from snnbench.spec import init_weights  # noqa: E402

from .common import against_own_loop, parser, print_result, random_batch, rel_err, torch_env  # noqa: E402
from .rec_common import shd_rec_case  # noqa: E402


def rockpool_model(case):
    net = case.network
    n, lif, readout = net.sizes()[0], net.layers[1], net.layers[3]
    rec = LIFTorch(n, leak_mode="decays", alpha=lif.beta, beta=REC_SCALE, threshold=lif.threshold * REC_SCALE,
                   has_rec=True, dt=DT, spike_generation_fn=ScaledSpike("superspike", 1.0, REC_SCALE),
                   max_spikes_per_dt=1)
    model = Sequential(LinearTorch((net.inputs, n), has_bias=False), rec,
                       LinearTorch((n, net.outputs), has_bias=False),
                       ExpSynTorch(net.outputs, tau=-DT / math.log(readout.beta), dt=DT))
    for name, p in model.named_parameters():  # the linear weights and w_rec; decays and threshold constant
        p.requires_grad_("LinearTorch" in name or name.endswith("w_rec"))
    return model


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
    case = shd_rec_case(time_steps, batch, reset="subtract_decayed", detach_reset=False)
    weights = init_weights(case.network, 0)
    adapter = get_runner_class("rockpool")()
    adapter.build(case, "cpu", 0)
    adapter.set_weights(weights)
    model = rockpool_model(case)
    lin0, rec, lin2 = (model.__getattr__(name) for name in ("0_LinearTorch", "1_LIFTorch", "2_LinearTorch"))
    scale = 1.0 / case.network.layers[3].beta
    with torch.no_grad():
        for lin, i, s in ((lin0, 0, 1.0), (lin2, 2, scale)):
            lin.weight.copy_(torch.as_tensor(weights[f"layers.{i}.weight"]).T * s)
        rec.w_rec.copy_(torch.as_tensor(weights["layers.1.recurrent"]).T)
    trainable = [p for _, p in model.named_parameters() if p.requires_grad]  # Rockpool's parameters() is a dict
    assert len(trainable) == 3, [n for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=case.spec.lr)
    x, y = random_batch(case)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    got = adapter.forward_backward(x, y)
    loss = own_loss(model, xt, yt)
    loss.backward()
    grads = {"layers.0.weight": lin0.weight.grad.numpy().T, "layers.2.weight": lin2.weight.grad.numpy().T * scale,
             "layers.1.recurrent": rec.w_rec.grad.numpy().T}
    grad_err = max(rel_err(g, got.grads[k]) for k, g in grads.items())
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
