"""The recurrent SHD network (``shd-rec-h128``) trained the way snnTorch's tutorials train a recurrent
SNN, beside the snnbench adapter, eager or both under ``torch.compile`` (``--compile``).

snnTorch's ``RLeaky`` tutorial writes a ``Net(nn.Module)`` with ``nn.Linear`` and
``snn.RLeaky(beta, linear_features=n)`` (all-to-all: its own ``nn.Linear(n, n)`` on the previous
spikes), initialises the spikes and membrane (``init_rleaky``) and loops over ``x[step]``, feeding each
layer's output to the next. This file writes the suite's recurrent network that way (``fast_sigmoid(slope=1)``
= SuperSpike, subtract reset, a ``reset_mechanism="none"`` readout, no biases). One change from a
tutorial: the recurrent ``nn.Linear``'s bias is zeroed and frozen, as the adapter does, because the
spec's recurrence has none (otherwise the two would not be the same network). It checks equal loss and
gradients on one batch, then times one training step (forward, backward, Adam) of each, alternately.

    python -m tests.benchmarks.idiomatic.snntorch_rec_shd [--compile] [--time-steps 128] [--batch 128] [--rounds 5]
"""

from __future__ import annotations

import numpy as np
import snntorch as snn
import torch
from snntorch import surrogate
from torch import nn

from snnbench.runners import get_runner_class
from snnbench.spec import init_weights

from .common import against_own_loop, parser, print_result, random_batch, rel_err, shd_rec_case, torch_env


class TutorialRNN(nn.Module):
    """One ``snn.RLeaky`` hidden layer and a leaky readout, stepped over time as the tutorial does."""

    def __init__(self, inputs: int, hidden: int, outputs: int, beta: float):
        super().__init__()
        self.fc1 = nn.Linear(inputs, hidden, bias=False)
        self.lif1 = snn.RLeaky(beta=beta, spike_grad=surrogate.fast_sigmoid(slope=1.0), linear_features=hidden)
        self.fc2 = nn.Linear(hidden, outputs, bias=False)
        self.li2 = snn.Leaky(beta=beta, reset_mechanism="none")
        with torch.no_grad():
            self.lif1.recurrent.bias.zero_()
        self.lif1.recurrent.bias.requires_grad_(False)

    def forward(self, x):
        spk1, mem1 = self.lif1.init_rleaky()
        mem2 = self.li2.init_leaky()
        mem2_rec = []
        for step in range(x.shape[0]):
            spk1, mem1 = self.lif1(self.fc1(x[step]), spk1, mem1)
            _, mem2 = self.li2(self.fc2(spk1), mem2)
            mem2_rec.append(mem2)
        return torch.stack(mem2_rec)


#: the tutorial network's parameter for each canonical weight
NAMES = {"layers.0.weight": "fc1.weight", "layers.1.recurrent": "lif1.recurrent.weight", "layers.2.weight": "fc2.weight"}


def own_step(model, optimizer, x, y):
    optimizer.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x).mean(0), y)
    loss.backward()
    optimizer.step()
    return loss


def compare(time_steps: int = 128, batch: int = 128, rounds: int = 5, steps: int = 3,
            compiled: bool = False) -> dict[str, float]:
    case = shd_rec_case(time_steps, batch)
    weights = init_weights(case.network, 0)
    adapter = get_runner_class("snntorch-compile" if compiled else "snntorch")()
    adapter.build(case, "cpu", 0)
    adapter.set_weights(weights)
    net = TutorialRNN(case.network.inputs, 128, 20, 0.9)
    params = dict(net.named_parameters())
    with torch.no_grad():
        for key, name in NAMES.items():
            params[name].copy_(torch.as_tensor(weights[key]))
    model = torch.compile(net, fullgraph=True, dynamic=False) if compiled else net
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=case.spec.lr)
    x, y = random_batch(case)
    xt, yt = torch.from_numpy(np.ascontiguousarray(np.swapaxes(x, 0, 1))), torch.from_numpy(y)
    got = adapter.forward_backward(x, y)
    loss = nn.functional.cross_entropy(net(xt).mean(0), yt)
    loss.backward()
    grad_err = max(rel_err(params[name].grad.numpy(), got.grads[key]) for key, name in NAMES.items())
    net.zero_grad(set_to_none=True)
    if compiled:  # compile both before the clock (the adapter compiles in prepare_batch)
        adapter.prepare_batch(x, y)
        own_step(model, optimizer, xt, yt)
    return against_own_loop(lambda: adapter.train_step(xt, yt), lambda: own_step(model, optimizer, xt, yt),
                            rounds, steps, own_loss=float(loss.detach()), adapter_loss=got.loss, grad_err=grad_err)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--compile", action="store_true", help="snntorch-compile vs the tutorial network compiled")
    args = p.parse_args(argv)
    r = compare(args.time_steps, args.batch, args.rounds, args.steps, args.compile)
    suffix = " (torch.compile)" if args.compile else ""
    print_result(r, args, f"snnbench snntorch{'-compile' if args.compile else ''} adapter (RLeaky)",
                 f"snnTorch RLeaky tutorial loop{suffix}", torch_env())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
