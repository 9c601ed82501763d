"""The spec as a SpikingJelly 2.0 ``activation_based`` network in multi-step mode: ``layer.Linear`` /
``layer.Conv2d`` / ``layer.MaxPool2d`` / ``layer.Flatten`` and ``neuron.LIFNode`` / ``IFNode`` with
``step_mode='m'`` on time-major ``[T, B, ...]`` tensors, a ``NonSpikingLIFNode`` readout, and
``functional.reset_net`` before every batch (SpikingJelly's neurons keep their membrane between calls).
A recurrent spiking layer is SpikingJelly's ``layer.LinearRecurrentContainer`` around a single-step
node (:func:`recurrent_node`)."""

from __future__ import annotations

import torch
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn

from ...spec import NetworkSpec


#: (spec surrogate, slope) -> (SpikingJelly class, its alpha): the built-ins whose derivative is the
#: canonical one. Older releases lack some (SuperSpike came after 0.0.0.0.14).
EXACT = {
    ("arctan", None): ("ATan", None),  # (a/2) / (1 + (pi/2 a x)^2)
    ("sigmoid", None): ("Sigmoid", None),  # a s (1 - s), s = sigmoid(a x)
    ("superspike", 1.0): ("SuperSpike", 1.0),  # a / (1 + |x|)^2
    ("superspike", 2.0): ("SoftSign", 2.0),  # a / (2 (1 + a|x|)^2)
    ("triangular", 1.0): ("PiecewiseQuadratic", 1.0),  # max(a (1 - a|x|), 0)
}


def sj_surrogate(name: str, slope: float):
    """``(SpikingJelly surrogate, exact?)``: the built-in surrogate (one SpikingJelly's fused LIF kernel
    accepts) whose derivative is the canonical one, else SuperSpike with slope 1, not exact; ``(None,
    False)`` when this SpikingJelly has neither (:func:`missing_surrogate` says which)."""
    cls_name, alpha = EXACT.get((name, None)) or EXACT.get((name, slope)) or ("SuperSpike", 1.0)
    exact = (name, None) in EXACT or (name, slope) in EXACT
    cls = getattr(surrogate, cls_name, None)
    if cls is None:
        return None, False
    return cls(alpha=slope if alpha is None else alpha), exact


def missing_surrogate(name: str, slope: float) -> str:
    """The SpikingJelly surrogate class the case needs and this release lacks; '' when it has it."""
    cls_name, _ = EXACT.get((name, None)) or EXACT.get((name, slope)) or ("SuperSpike", 1.0)
    return "" if hasattr(surrogate, cls_name) else cls_name


def sj_reset(kind: str) -> float | None:
    """SpikingJelly's ``v_reset``: 0 is the canonical zero reset; ``None`` (soft reset) subtracts the
    threshold in the step that spikes, before the next decay: the spec's ``subtract_decayed``."""
    return 0.0 if kind == "zero" else None


class ScaledReadout(nn.Module):
    """``NonSpikingLIFNode(tau)`` integrates ``v += (x - v) / tau`` = ``beta v + (1 - beta) x``; its
    input is scaled by ``1 / (1 - beta)`` so that it adds exactly the layer's current. Releases without
    ``NonSpikingLIFNode`` (0.0.0.0.14) get a ``LIFNode`` that never fires (threshold 1e30, so it never
    resets; an infinite one would make its reset 0 * inf = NaN) with no input decay, ``v = beta v + x``, whose membrane sequence (``store_v_seq``) is the
    readout: the same equation."""

    def __init__(self, beta: float):
        super().__init__()
        tau = 1.0 / (1.0 - beta)
        if hasattr(neuron, "NonSpikingLIFNode"):
            self.scale, self.node, self.stored = tau, neuron.NonSpikingLIFNode(tau=tau), False
        else:
            self.scale, self.stored = 1.0, True
            self.node = neuron.LIFNode(tau=tau, decay_input=False, v_threshold=1e30, v_reset=None,
                                       step_mode="m", store_v_seq=True)

    def forward(self, x):
        if self.stored:
            self.node(x)
            return self.node.v_seq
        return torch.stack(self.node(x * self.scale))


def _node(spec, grad, step_mode: str):
    """``neuron.LIFNode`` (``tau = 1 / (1 - beta)``, no input decay: ``v = beta v + I``) or ``IFNode``."""
    common = dict(v_threshold=float(spec.threshold), v_reset=sj_reset(spec.reset), surrogate_function=grad,
                  detach_reset=spec.detach_reset, step_mode=step_mode)
    if spec.type == "if":
        return neuron.IFNode(**common)
    return neuron.LIFNode(tau=1.0 / (1.0 - float(spec.decay)), decay_input=False, **common)


def recurrent_node(spec, n: int, grad):
    """A recurrent ``lif`` / ``if`` as SpikingJelly's ``layer.LinearRecurrentContainer`` (2.0.0,
    ``layer/container.py``): per step its child receives ``i[t] = [x[t], y[t-1]] @ rc.weight.T`` with
    ``rc = nn.Linear(2n, n, bias=False)`` and ``y[t-1]`` the child's previous output (``y[-1] = 0``),
    then the child node charges, fires and resets as in the feed-forward layer. With ``rc.weight =
    [I_n | V]`` that is the spec's ``I_t + s_{t-1} @ V.T`` entering the membrane before the reset and
    threshold (no bias, diagonal free; ``y`` carries the surrogate's gradient, not detached). The
    identity block is the container's input path, not a spec weight: its gradient is zeroed by a hook
    so it stays ``I`` (Adam leaves a parameter with zero gradients unchanged); the canonical
    ``layers.{i}.recurrent`` is the block ``rc.weight[:, n:]``. The child runs single-step (the
    container requires it), so the time loop is the container's, one ``[B, 2n] x [2n, n]`` product
    per step."""
    box = layer.LinearRecurrentContainer(_node(spec, grad, "s"), n, n, bias=False, step_mode="m")
    with torch.no_grad():
        box.rc.weight[:, :n].copy_(torch.eye(n))
    mask = torch.cat([torch.zeros(n, n), torch.ones(n, n)], dim=1)
    box.rc.weight.register_hook(lambda g: g * mask.to(g.device, g.dtype))
    return box


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
            elif spec.recurrent:
                layers.append(recurrent_node(spec, n, grad))
            else:  # lif / if
                layers.append(_node(spec, grad, "m"))
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
