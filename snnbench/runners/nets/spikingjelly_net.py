"""The spec as a SpikingJelly 2.0 ``activation_based`` network in multi-step mode: ``layer.Linear`` /
``layer.Conv2d`` / ``layer.MaxPool2d`` / ``layer.Flatten`` and ``neuron.LIFNode`` / ``IFNode`` with
``step_mode='m'`` on time-major ``[T, B, ...]`` tensors, a ``NonSpikingLIFNode`` readout, and
``functional.reset_net`` before every batch (SpikingJelly's neurons keep their membrane between calls)."""

from __future__ import annotations

import torch
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn

from ...spec import NetworkSpec


def sj_surrogate(name: str, slope: float):
    """``(SpikingJelly surrogate, exact?)``: the built-in surrogate (one SpikingJelly's fused LIF kernel
    accepts) whose derivative is the canonical one, else SuperSpike with slope 1, not exact."""
    if name == "arctan":
        return surrogate.ATan(alpha=slope), True  # (a/2) / (1 + (pi/2 a x)^2)
    if name == "sigmoid":
        return surrogate.Sigmoid(alpha=slope), True  # a s (1 - s), s = sigmoid(a x)
    if name == "superspike" and slope == 1.0:
        return surrogate.SuperSpike(alpha=1.0), True  # a / (1 + |x|)^2
    if name == "superspike" and slope == 2.0:
        return surrogate.SoftSign(alpha=2.0), True  # a / (2 (1 + a|x|)^2)
    if name == "triangular" and slope == 1.0:
        return surrogate.PiecewiseQuadratic(alpha=1.0), True  # max(a (1 - a|x|), 0)
    return surrogate.SuperSpike(alpha=1.0), False


def sj_reset(kind: str) -> float | None:
    """SpikingJelly's ``v_reset``: 0 is the canonical zero reset; ``None`` (soft reset) subtracts the
    threshold in the step that spikes, before the next decay: the spec's ``subtract_decayed``."""
    return 0.0 if kind == "zero" else None


class ScaledReadout(nn.Module):
    """``NonSpikingLIFNode(tau)`` integrates ``v += (x - v) / tau`` = ``beta v + (1 - beta) x``; its
    input is scaled by ``1 / (1 - beta)`` so that it adds exactly the layer's current."""

    def __init__(self, beta: float):
        super().__init__()
        self.scale = 1.0 / (1.0 - beta)
        self.node = neuron.NonSpikingLIFNode(tau=1.0 / (1.0 - beta))

    def forward(self, x):
        return torch.stack(self.node(x * self.scale))


class SpikingJellyNet(nn.Module):
    """``forward(x [T, B, C], record_spikes) -> (spikes per spiking layer [T, B, n], readout [T, B, O])``;
    module ``layers.{i}`` holds spec layer ``i``."""

    def __init__(self, net: NetworkSpec):
        super().__init__()
        self.spec = net
        self.in_shapes = net.input_shapes()
        grad, _ = sj_surrogate(net.surrogate.name, net.surrogate.slope)
        layers = []
        for i, (spec, n) in enumerate(zip(net.layers, net.sizes())):
            if spec.type == "linear":
                layers.append(layer.Linear(self.in_shapes[i][0], n, bias=spec.bias, step_mode="m"))
            elif spec.type == "conv2d":
                layers.append(layer.Conv2d(self.in_shapes[i][0], int(spec.out), int(spec.kernel),
                                           stride=int(spec.stride), padding=spec.padding, bias=spec.bias, step_mode="m"))
            elif spec.type == "maxpool":
                layers.append(layer.MaxPool2d(int(spec.kernel), int(spec.stride), step_mode="m"))
            elif spec.type == "flatten":
                layers.append(layer.Flatten(step_mode="m"))
            elif spec.type == "li":
                layers.append(ScaledReadout(float(spec.decay)))
            elif spec.type == "if":
                layers.append(neuron.IFNode(v_threshold=float(spec.threshold), v_reset=sj_reset(spec.reset),
                                            surrogate_function=grad, detach_reset=spec.detach_reset, step_mode="m"))
            else:  # lif: tau = 1 / (1 - beta), no input decay: v = beta v + I
                layers.append(neuron.LIFNode(tau=1.0 / (1.0 - float(spec.decay)), decay_input=False,
                                             v_threshold=float(spec.threshold), v_reset=sj_reset(spec.reset),
                                             surrogate_function=grad, detach_reset=spec.detach_reset, step_mode="m"))
        self.layers = nn.ModuleList(layers)

    def forward(self, x, record_spikes: bool = False):
        assert x.dim() == 3 and x.shape[-1] == self.spec.inputs, f"expected [T, B, C], got {tuple(x.shape)}"
        functional.reset_net(self)
        T, B = x.shape[:2]
        h, spikes = x.reshape(T, B, *self.in_shapes[0]), []
        for spec, module in zip(self.spec.layers, self.layers):
            h = module(h)
            if spec.type == "li":
                return (spikes if record_spikes else []), h
            if spec.spiking:
                spikes.append(h.flatten(2))  # [T, B, n], canonical (C, H, W) order
        return (spikes if record_spikes else []), spikes[-1]  # no LI readout: the last spike train is the output
