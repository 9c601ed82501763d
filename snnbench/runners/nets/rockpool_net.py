"""The spec as a Rockpool 3 torch network, batch-major ``[B, T, C]`` as Rockpool expects:
``nn.Linear`` weights feeding ``LIFNeuronTorch`` (Rockpool's LIF without a synapse) and an
``ExpSynTorch`` readout, each module's state reset before every batch. A recurrent spiking layer is
Rockpool's recurrent ``LIFTorch(has_rec=True)`` (see :func:`recurrent_lif` for the exact mapping)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ...spec import NetworkSpec
from ..base import guarded_import
from ..torchmath.spike import spike

rockpool_modules = guarded_import("rockpool.nn.modules")

DT = 1e-3  # Rockpool's default time step (s); the time constants below are in the same unit
#: a recurrent layer's synaptic decay, and the factor its membrane and threshold are scaled by: a power
#: of two, so the scaling is exact in floating point (see :func:`recurrent_lif`)
REC_SCALE = 2.0 ** -32


class CanonicalSpike:
    """For Rockpool's ``spike_generation_fn`` hook, which calls ``fn.apply(v, threshold, window,
    max_spikes)``: one spike where ``v > threshold``, the canonical surrogate backward (Rockpool's own
    ``StepPWL`` is ``1/threshold`` on ``v >= threshold - window``, none of the spec's surrogates)."""

    def __init__(self, name: str, slope: float):
        self.name, self.slope = name, float(slope)

    def apply(self, v, threshold, window, max_spikes):
        return spike(v - threshold, self.name, self.slope)


class ScaledSpike(CanonicalSpike):
    """:class:`CanonicalSpike` on a membrane (and threshold) held ``scale`` times the canonical one:
    ``H((v - th) / scale)`` with the canonical surrogate of ``(v - th) / scale``. With ``scale`` a power
    of two the division is exact, so spikes and ``d spike / d v_canonical`` are the canonical ones."""

    def __init__(self, name: str, slope: float, scale: float):
        super().__init__(name, slope)
        self.inv_scale = 1.0 / scale

    def apply(self, v, threshold, window, max_spikes):
        return spike((v - threshold) * self.inv_scale, self.name, self.slope)


def recurrent_lif(n: int, decay: float, threshold: float, surrogate: tuple[str, float]):
    """Rockpool's recurrent ``LIFTorch(has_rec=True)`` computing the canonical recurrent ``lif`` / ``if``.

    ``LIFTorch`` (Rockpool 3.1 ``lif_torch.py``) steps ``i <- b (i + x_t + s_{t-1} @ w_rec)``,
    ``v <- a v + i + bias``, ``s = spike(v, th)``, ``v <- v - s th``: the recurrent input enters the
    *synaptic* current, which decays (by ``b``) before the membrane sees it, so a synapse-free
    ``lif`` is its limit ``b -> 0``. Here ``b = c = 2^-32`` (``leak_mode='decays'``) and the
    threshold is ``c * th``: then ``i = c (x_t + s_{t-1} @ w_rec)`` plus ``c^2`` times the previous
    current, and ``v`` is ``c`` times the canonical membrane (``a = beta``; ``subtract_decayed``, the
    Rockpool reset), spikes unchanged (:class:`ScaledSpike` divides by ``c``, exactly). What remains is
    the synaptic carry-over, ``2^-32`` of the previous step's current, below float32 resolution next
    to any non-zero input. ``w_rec`` is ``[from, to]`` (``s @ w_rec``) = ``V.T`` with no bias and a
    free diagonal; the fed-back spike is not detached (the surrogate's gradient flows). Bias (zero),
    decays and threshold are frozen by :class:`RockpoolNet`."""
    return rockpool_modules.LIFTorch(n, leak_mode="decays", alpha=float(decay), beta=REC_SCALE,
                                     threshold=float(threshold) * REC_SCALE, has_rec=True, dt=DT,
                                     spike_generation_fn=ScaledSpike(*surrogate, REC_SCALE), max_spikes_per_dt=1)


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
    ``bias``, decays) are frozen: constants of the spec; a recurrent layer's ``w_rec`` is trained."""

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
            elif spec.recurrent:
                layers.append(recurrent_lif(n, spec.decay, spec.threshold, (net.surrogate.name, net.surrogate.slope)))
            else:  # lif / if: v <- alpha v + I, alpha = exp(-dt / tau_mem) = beta
                tau = -DT / math.log(spec.decay) if spec.decay < 1.0 else math.inf
                layers.append(rockpool_modules.LIFNeuronTorch(n, tau_mem=tau, threshold=float(spec.threshold), dt=DT,
                                                              spike_generation_fn=spike_fn, max_spikes_per_dt=1))
        self.layers = nn.ModuleList(layers)
        for name, p in self.named_parameters():
            linear = isinstance(self.layers[int(name.split(".")[1])], nn.Linear)
            if not (name.endswith(".w_rec") or linear and name.endswith(("weight", "bias"))):
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
