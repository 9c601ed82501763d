"""The spec as a Rockpool 3 torch network, batch-major ``[B, T, C]`` as Rockpool expects:
``nn.Linear`` weights feeding ``LIFNeuronTorch`` (Rockpool's LIF without a synapse) and an
``ExpSynTorch`` readout, each module's state reset before every batch."""

from __future__ import annotations

import math

import torch
from torch import nn

from ...spec import NetworkSpec
from ..base import guarded_import
from ..torchmath.spike import spike

rockpool_modules = guarded_import("rockpool.nn.modules")

DT = 1e-3  # Rockpool's default time step (s); the time constants below are in the same unit


class CanonicalSpike:
    """For Rockpool's ``spike_generation_fn`` hook, which calls ``fn.apply(v, threshold, window,
    max_spikes)``: one spike where ``v > threshold``, the canonical surrogate backward (Rockpool's own
    ``StepPWL`` is ``1/threshold`` on ``v >= threshold - window``, none of the spec's surrogates)."""

    def __init__(self, name: str, slope: float):
        self.name, self.slope = name, float(slope)

    def apply(self, v, threshold, window, max_spikes):
        return spike(v - threshold, self.name, self.slope)


class Readout(nn.Module):
    """``ExpSynTorch(tau)`` computes ``y <- beta (y + x)``: fed ``x / beta``, ``y`` is the canonical
    leaky-integrator membrane ``beta v + I``."""

    def __init__(self, n: int, beta: float):
        super().__init__()
        self.scale = 1.0 / beta
        self.syn = rockpool_modules.ExpSynTorch(n, tau=-DT / math.log(beta), dt=DT)

    def forward(self, x):
        return self.syn(x * self.scale)[0]


class RockpoolNet(nn.Module):
    """``forward(x [B, T, C], record_spikes) -> (spikes per spiking layer [B, T, n], readout [B, T, O])``;
    module ``layers.{i}`` holds spec layer ``i``. Rockpool's neuron parameters (``tau_mem``, ``threshold``,
    ``bias``) are frozen: constants of the spec."""

    def __init__(self, net: NetworkSpec):
        super().__init__()
        self.spec = net
        spike_fn = CanonicalSpike(net.surrogate.name, net.surrogate.slope)
        layers = []
        for i, (spec, n) in enumerate(zip(net.layers, net.sizes())):
            if spec.type == "linear":
                layers.append(nn.Linear(net.input_shapes()[i][0], n, bias=spec.bias))
            elif spec.type == "li":
                layers.append(Readout(n, float(spec.beta)))
            else:  # lif / if: v <- alpha v + I, alpha = exp(-dt / tau_mem) = beta
                tau = -DT / math.log(spec.decay) if spec.decay < 1.0 else math.inf
                layers.append(rockpool_modules.LIFNeuronTorch(n, tau_mem=tau, threshold=float(spec.threshold), dt=DT,
                                                              spike_generation_fn=spike_fn, max_spikes_per_dt=1))
        self.layers = nn.ModuleList(layers)
        for name, p in self.named_parameters():
            if not name.endswith(("weight", "bias")) or not isinstance(self.layers[int(name.split(".")[1])], nn.Linear):
                p.requires_grad_(False)

    def forward(self, x, record_spikes: bool = False):
        assert x.dim() == 3 and x.shape[-1] == self.spec.inputs, f"expected [B, T, C], got {tuple(x.shape)}"
        h, spikes = x, []
        for spec, module in zip(self.spec.layers, self.layers):
            if spec.type == "linear":
                h = module(h)
                continue
            if spec.type == "li":
                module.syn.reset_state()
                return (spikes if record_spikes else []), module(h)
            module.reset_state()  # Rockpool keeps batch 0's final state for the next call
            h = module(h)[0]
            spikes.append(h)
        return (spikes if record_spikes else []), spikes[-1]
