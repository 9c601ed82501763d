"""The spec as a Sinabs 3 network, batch-major ``[B, T, ...]`` as Sinabs expects: ``nn.Linear`` /
``nn.Conv2d`` / ``nn.MaxPool2d`` (images of all ``B * T`` steps at once), ``sinabs.layers.LIF`` /
``IAF`` with ``SingleSpike`` and an ``ExpLeak`` readout, every layer's state reset before every batch
(:func:`reset_all`). A recurrent layer is Sinabs' ``LIFRecurrent`` / ``IAFRecurrent`` (:func:`recurrent_neuron`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ...spec import NetworkSpec
from ..base import guarded_import
from ..torchmath.spike import surrogate_grad_torch

sl = guarded_import("sinabs.layers")
spike_generation = guarded_import("sinabs.activation.spike_generation")


@dataclass
class CanonicalSurrogate:
    """Sinabs' ``surrogate_grad_fn`` hook, ``(v_mem, threshold) -> dS/dv``, with the canonical formula."""

    name: str
    slope: float

    def __call__(self, v_mem, spike_threshold):
        return surrogate_grad_torch(self.name, v_mem - spike_threshold, self.slope)


@dataclass
class CanonicalReset:
    """Sinabs' ``reset_fn`` hook, ``(spikes, state, threshold) -> state``. Sinabs resets in the step
    that spikes, before the next decay ``alpha``: subtracting ``threshold / alpha`` leaves exactly
    ``threshold`` removed (the spec's ``subtract``); ``threshold`` itself is ``subtract_decayed``;
    ``(1 - s) v`` is ``zero``. The spike is detached when the spec detaches the reset (Sinabs' own
    ``MembraneSubtract`` never does, its ``MembraneReset`` always does)."""

    kind: str
    detach: bool
    alpha: float

    def __call__(self, spikes, state, spike_threshold):
        s = spikes.detach() if self.detach else spikes
        state = state.copy()
        if self.kind == "subtract":
            state["v_mem"] = state["v_mem"] - s * (spike_threshold / self.alpha)
        elif self.kind == "subtract_decayed":
            state["v_mem"] = state["v_mem"] - s * spike_threshold
        else:
            state["v_mem"] = state["v_mem"] * (1.0 - s)
        return state


def tau_of(beta: float) -> float:
    """Sinabs' ``tau_mem`` for a decay ``alpha = exp(-1 / tau_mem)`` of ``beta``."""
    return -1.0 / math.log(beta)


def recurrent_neuron(spec, n: int, grad) -> nn.Module:
    """A recurrent ``lif`` / ``if`` as Sinabs' own ``LIFRecurrent`` / ``IAFRecurrent``. Sinabs adds
    ``rec_connect(s_t)`` to the input of step ``t + 1`` (``v_{t+1} = alpha v_t + x_{t+1} + V s_t``, with
    ``s_0`` zero, and the gradient flowing through ``s_t``): the spec's ``V s_{t-1}`` exactly. ``rec_connect``
    is a bias-free ``nn.Linear(n, n)``, its weight the canonical ``layers.{i}.recurrent`` (``[out, in]``).
    Reset, spike function and surrogate are the feed-forward layer's hooks."""
    rec = nn.Linear(n, n, bias=False)
    common = dict(rec_connect=rec, spike_threshold=torch.tensor(float(spec.threshold)),
                  spike_fn=spike_generation.SingleSpike, surrogate_grad_fn=grad)
    if spec.type == "if":
        return sl.IAFRecurrent(reset_fn=CanonicalReset(spec.reset, spec.detach_reset, 1.0), **common)
    return sl.LIFRecurrent(tau_mem=tau_of(spec.beta), norm_input=False,
                           reset_fn=CanonicalReset(spec.reset, spec.detach_reset, float(spec.beta)), **common)


def reset_all(model: nn.Module) -> None:
    """Zero the state of every Sinabs layer in ``model``. ``sinabs.reset_states`` (3.1.3) descends into a
    module with children instead of resetting it, so it never resets ``LIFRecurrent`` (whose ``rec_connect``
    is a child): the membrane would carry over from the previous batch. This resets each ``StatefulLayer``
    itself, with Sinabs' own ``reset_states`` method."""
    for m in model.modules():
        if isinstance(m, sl.StatefulLayer):
            m.reset_states()


class SinabsNet(nn.Module):
    """``forward(x [B, T, C], record_spikes) -> (spikes per spiking layer [B, T, n], readout [B, T, O])``;
    module ``layers.{i}`` holds spec layer ``i``. Sinabs' time constants are frozen (the spec's decays are
    constants)."""

    def __init__(self, net: NetworkSpec):
        super().__init__()
        self.spec = net
        self.in_shapes = net.input_shapes()
        grad = CanonicalSurrogate(net.surrogate.name, net.surrogate.slope)
        layers = []
        for i, (spec, n) in enumerate(zip(net.layers, net.sizes())):
            if spec.type == "linear":
                layers.append(nn.Linear(self.in_shapes[i][0], n, bias=spec.bias))
            elif spec.type == "conv2d":
                layers.append(nn.Conv2d(self.in_shapes[i][0], int(spec.out), int(spec.kernel), stride=int(spec.stride),
                                        padding=spec.padding, bias=spec.bias))
            elif spec.type == "maxpool":
                layers.append(nn.MaxPool2d(int(spec.kernel), int(spec.stride)))
            elif spec.type == "flatten":
                layers.append(nn.Flatten(2))  # [B, T, C, H, W] -> [B, T, n]
            elif spec.type == "li":
                layers.append(sl.ExpLeak(tau_mem=tau_of(spec.beta), norm_input=False))
            elif spec.recurrent:
                layers.append(recurrent_neuron(spec, n, grad))
            elif spec.type == "if":
                layers.append(sl.IAF(spike_threshold=torch.tensor(float(spec.threshold)),
                                     spike_fn=spike_generation.SingleSpike,
                                     reset_fn=CanonicalReset(spec.reset, spec.detach_reset, 1.0),
                                     surrogate_grad_fn=grad))
            else:
                layers.append(sl.LIF(tau_mem=tau_of(spec.beta), spike_threshold=torch.tensor(float(spec.threshold)),
                                     spike_fn=spike_generation.SingleSpike,
                                     reset_fn=CanonicalReset(spec.reset, spec.detach_reset, float(spec.beta)),
                                     surrogate_grad_fn=grad, norm_input=False))
        self.layers = nn.ModuleList(layers)
        for name, p in self.named_parameters():
            if not name.endswith(("weight", "bias")):
                p.requires_grad_(False)  # tau_mem, spike_threshold: constants of the spec

    def forward(self, x, record_spikes: bool = False):
        assert x.dim() == 3 and x.shape[-1] == self.spec.inputs, f"expected [B, T, C], got {tuple(x.shape)}"
        reset_all(self)
        B, T = x.shape[:2]
        h, spikes = x.reshape(B, T, *self.in_shapes[0]), []
        for spec, module in zip(self.spec.layers, self.layers):
            if spec.type in ("conv2d", "maxpool"):  # all B * T images at once
                h = module(h.flatten(0, 1))
                h = h.reshape(B, T, *h.shape[1:])
                continue
            h = module(h)
            if spec.type == "li":
                return (spikes if record_spikes else []), h
            if spec.spiking:
                spikes.append(h.flatten(2))  # [B, T, n], canonical (C, H, W) order
        return (spikes if record_spikes else []), spikes[-1]
