"""The SHD network trained the way snnTorch's tutorials train, beside the snnbench adapter, eager or
both under ``torch.compile`` (``--compile``: the ``snntorch-compile`` runner against the tutorial
network compiled the same way, ``fullgraph=True``).

snnTorch's tutorials write a ``Net(nn.Module)`` with ``nn.Linear`` and ``snn.Leaky`` attributes and a
``forward`` that initialises the membranes (``init_leaky``) and loops over ``x[step]``, feeding each
layer's output to the next and recording the readout membrane. This file writes the suite's network
that way (``fast_sigmoid(slope=1)`` = SuperSpike, subtract reset, a ``reset_mechanism="none"`` readout).
It checks equal loss and gradients on one batch, then times one training step (forward, backward,
Adam) of each, alternately, in one process.

    python -m tests.benchmarks.idiomatic.snntorch_shd [--compile] [--time-steps 128] [--batch 128] [--rounds 5]
"""

from __future__ import annotations

import numpy as np
import snntorch as snn
import torch
from snntorch import surrogate
from torch import nn

from snnbench.runners import get_runner_class
from snnbench.spec import init_weights

from .common import against_own_loop, parser, print_result, random_batch, rel_err, shd_case, torch_env


class TutorialNet(nn.Module):
    """Two ``snn.Leaky`` hidden layers and a leaky readout, stepped over time as the tutorials do."""

    def __init__(self, inputs: int, hidden: int, outputs: int, beta: float):
        super().__init__()
        grad = surrogate.fast_sigmoid(slope=1.0)
        self.fc1, self.lif1 = nn.Linear(inputs, hidden), snn.Leaky(beta=beta, spike_grad=grad)
        self.fc2, self.lif2 = nn.Linear(hidden, hidden), snn.Leaky(beta=beta, spike_grad=grad)
        self.fc3, self.li3 = nn.Linear(hidden, outputs), snn.Leaky(beta=beta, reset_mechanism="none")

    def forward(self, x):
        mem1, mem2, mem3 = self.lif1.init_leaky(), self.lif2.init_leaky(), self.li3.init_leaky()
        mem3_rec = []
        for step in range(x.shape[0]):
            spk1, mem1 = self.lif1(self.fc1(x[step]), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            _, mem3 = self.li3(self.fc3(spk2), mem3)
            mem3_rec.append(mem3)
        return torch.stack(mem3_rec)


def own_step(model, optimizer, x, y):
    optimizer.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x).mean(0), y)
    loss.backward()
    optimizer.step()
    return loss


def compare(time_steps: int = 128, batch: int = 128, rounds: int = 5, steps: int = 3,
            compiled: bool = False) -> dict[str, float]:
    case = shd_case(time_steps, batch)
    weights = init_weights(case.network, 0)
    adapter = get_runner_class("snntorch-compile" if compiled else "snntorch")()
    adapter.build(case, "cpu", 0)
    adapter.set_weights(weights)
    net = TutorialNet(case.network.inputs, 128, 20, 0.9)
    with torch.no_grad():
        for fc, i in ((net.fc1, 0), (net.fc2, 2), (net.fc3, 4)):
            fc.weight.copy_(torch.as_tensor(weights[f"layers.{i}.weight"]))
            fc.bias.copy_(torch.as_tensor(weights[f"layers.{i}.bias"]))
    model = torch.compile(net, fullgraph=True, dynamic=False) if compiled else net
    optimizer = torch.optim.Adam(net.parameters(), lr=case.spec.lr)
    x, y = random_batch(case)
    xt, yt = torch.from_numpy(np.ascontiguousarray(np.swapaxes(x, 0, 1))), torch.from_numpy(y)
    got = adapter.forward_backward(x, y)
    loss = nn.functional.cross_entropy(net(xt).mean(0), yt)
    loss.backward()
    grad_err = max(rel_err(fc.weight.grad.numpy(), got.grads[f"layers.{i}.weight"])
                   for fc, i in ((net.fc1, 0), (net.fc2, 2), (net.fc3, 4)))
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
    print_result(r, args, f"snnbench snntorch{'-compile' if args.compile else ''} adapter",
                 f"snnTorch tutorial loop{suffix}", torch_env())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
