"""snnTorch 1.0's parallel-in-time neurons as spec networks (``linear`` + ``lif_noreset`` pairs), used by
:mod:`snnbench.runners.snntorch_parallel_runner`.

* :class:`LeakyParallelNet`: each ``linear`` + ``lif_noreset`` pair is one ``snn.LeakyParallel``, which fuses
  the input projection into an ``nn.RNN(nonlinearity="relu")`` whose recurrent matrix is ``diag(beta)``:
  ``v_t = relu(W x_t + b_ih + b_hh + beta v_{t-1})``, spikes ``H(v_t - threshold)``. The ``relu`` clips the
  membrane at zero every step (the spec's ``relu: true``); there is no reset.
* :class:`StateLeakyNet`: ``nn.Linear`` then ``snn.StateLeaky``, a depthwise causal convolution of the input
  current with the kernel ``exp(-t / tau)``, ``tau = 1 / (1 - beta_snn)``: the no-reset LIF with decay
  ``exp(-(1 - beta_snn))`` per step, so the spec's ``beta`` is passed as ``beta_snn = 1 + ln(beta)``.

Both return ``(spikes per spiking layer [T, B, n] (if asked), last spike train [T, B, n])``, time-major.
"""

from __future__ import annotations

import math

import snntorch as snn
import torch
from torch import nn

from ...spec import NetworkSpec
from .snntorch_net import spike_grad


def stateleaky_beta(beta: float) -> float:
    """The ``beta`` to give ``snn.StateLeaky`` for a per-step decay ``beta`` (its kernel is
    ``exp(-t (1 - beta_snn))``)."""
    return 1.0 + math.log(beta)


class LeakyParallelNet(nn.Module):
    """Module ``cells[str(i)]`` is the ``snn.LeakyParallel`` of spec layers ``i - 1`` (linear) and ``i``
    (lif_noreset); its ``rnn.weight_ih_l0`` / ``rnn.bias_ih_l0`` are the canonical ``layers.{i-1}.weight`` /
    ``bias``. The RNN's second bias ``bias_hh_l0`` is held at zero (frozen), so the sum of the two is the
    canonical bias and trains as one."""

    def __init__(self, net: NetworkSpec):
        super().__init__()
        self.spec = net
        grad = spike_grad(net.surrogate.name, net.surrogate.slope)
        sizes, in_shapes = net.sizes(), net.input_shapes()
        cells = {}
        for i, layer in enumerate(net.layers):
            if layer.type != "lif_noreset":
                continue
            linear = net.layers[i - 1]
            cell = snn.LeakyParallel(input_size=in_shapes[i - 1][0], hidden_size=sizes[i], beta=float(layer.beta),
                                     bias=linear.bias, threshold=float(layer.threshold), spike_grad=grad)
            if linear.bias:
                with torch.no_grad():
                    cell.rnn.bias_hh_l0.zero_()
                cell.rnn.bias_hh_l0.requires_grad_(False)
            cells[str(i)] = cell
        self.cells = nn.ModuleDict(cells)

    def forward(self, x, record_spikes: bool = False):
        assert x.dim() == 3 and x.shape[-1] == self.spec.inputs, f"expected [T, B, C], got {tuple(x.shape)}"
        h, spikes = x, []
        for cell in self.cells.values():
            h = cell(h)  # [T, B, n]: LeakyParallel is time-major (its nn.RNN has batch_first=False)
            spikes.append(h)
        return (spikes if record_spikes else []), h


class StateLeakyNet(nn.Module):
    """Module ``layers.{i}`` holds spec layer ``i``: ``nn.Linear`` (the canonical weight names) or
    ``snn.StateLeaky(beta=1 + ln(beta), channels=n, output=True)`` with the full causal kernel (no truncation)."""

    def __init__(self, net: NetworkSpec):
        super().__init__()
        self.spec = net
        grad = spike_grad(net.surrogate.name, net.surrogate.slope)
        layers = []
        for layer, n, in_shape in zip(net.layers, net.sizes(), net.input_shapes()):
            if layer.type == "linear":
                layers.append(nn.Linear(in_shape[0], n, bias=layer.bias))
            else:
                layers.append(snn.StateLeaky(beta=stateleaky_beta(float(layer.beta)), channels=n,
                                             threshold=float(layer.threshold), spike_grad=grad, output=True))
        self.layers = nn.ModuleList(layers)

    def forward(self, x, record_spikes: bool = False):
        assert x.dim() == 3 and x.shape[-1] == self.spec.inputs, f"expected [T, B, C], got {tuple(x.shape)}"
        h, spikes = x, []
        for layer, module in zip(self.spec.layers, self.layers):
            if layer.type == "linear":
                h = module(h)  # one GEMM over all T * B rows
            else:
                h, _ = module(h)  # (spikes, membrane), both [T, B, n]
                spikes.append(h)
        return (spikes if record_spikes else []), h
