"""The canonical spec of :mod:`snnbench.spec` as a PyTorch module, written by hand: what the
``torch`` and ``torch-compile`` runners run.

Weight layers see all ``T * B`` rows (images) at once: ``nn.Linear`` on ``[T, B, C]``, ``nn.Conv2d``
and ``F.max_pool2d`` on ``[T * B, C, H, W]``; neurons loop over time in Python (iterating a tensor
unbinds it: one view per step, and one gradient buffer for all of them in the backward pass). A
recurrent layer's ``V s_{t-1}`` is the one product inside its time loop
(:mod:`..torchmath.recurrent`); its ``V`` is the parameter ``layers.{i}.recurrent``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...spec import PARALLEL_TYPES, LayerSpec, NetworkSpec, weight_shapes
from ..torch_common import weight_module
from ..torchmath import parallel as P
from ..torchmath.recurrent import lif_recurrent_sequence
from ..torchmath.spike import delay_one_step, spike


def lif_sequence(current: torch.Tensor, beta, threshold: float, reset: str, detach: bool,
                 surrogate: tuple[str, float]) -> torch.Tensor:
    """Canonical LIF over ``current [T, B, N]``; returns spikes ``[T, B, N]``."""
    v = torch.zeros_like(current[0])
    s = torch.zeros_like(v)
    out = []
    for i_t in current:
        r = s.detach() if detach else s
        if reset == "subtract":
            v = beta * v + i_t - threshold * r
        elif reset == "subtract_decayed":
            v = beta * (v - threshold * r) + i_t
        elif reset == "zero":
            v = beta * (1.0 - r) * v + i_t
        else:
            v = beta * v + i_t
        s = spike(v - threshold, *surrogate)
        out.append(s)
    return torch.stack(out)


class Decay(nn.Module):
    """A neuron layer's decay: a trainable per-neuron parameter (clipped to [0, 1]) or a constant."""

    def __init__(self, value: float, size: int, trainable: bool):
        super().__init__()
        self.value = float(value)
        if trainable:
            self.beta = nn.Parameter(torch.full((size,), float(value)))

    def forward(self):
        return self.beta.clamp(0.0, 1.0) if hasattr(self, "beta") else self.value


class RecurrentDecay(Decay):
    """A recurrent neuron layer's parameters: its decay and ``recurrent`` (``V [n, n]``, canonical layout)."""

    def __init__(self, value: float, size: int, trainable: bool):
        super().__init__(value, size, trainable)
        self.recurrent = nn.Parameter(torch.zeros(size, size))  # values come from the canonical weights


class ParallelNeuron(nn.Module):
    """The parameters of a parallel-in-time neuron layer, named as the canonical weights."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], index: int):
        super().__init__()
        for key, shape in shapes.items():
            _, i, kind = key.split(".")
            if int(i) == index:
                self.register_parameter(kind, nn.Parameter(torch.zeros(shape)))

    def run(self, layer: LayerSpec, h: torch.Tensor, surrogate: tuple[str, float], serial: bool) -> torch.Tensor:
        """The layer's spikes for input current ``h [T, B, N]`` (``serial``: the step-by-step form)."""
        name, slope = surrogate
        if layer.type == "lif_noreset":
            method = "scan" if serial else layer.method
            fn = {"scan": P.lif_noreset_loop, "assoc": P.lif_noreset_chunked, "fft": P.lif_noreset_fft}[method]
            if layer.relu:  # the membrane clipped at zero: step by step whatever the method
                fn = P.lif_noreset_relu_loop
            return spike(fn(h, layer.beta) - layer.threshold, name, slope)
        if layer.type == "psn":
            return P.psn(h, self.psn_weight, self.psn_bias, name, slope)[0]
        if layer.type == "masked_psn":
            return P.masked_psn(h, self.psn_weight, self.psn_bias, layer.k, name, slope)[0]
        if layer.type == "sliding_psn":
            return P.sliding_psn(h, self.taps, self.tap_bias, name, slope)[0]
        fn = P.dsn_serial if serial else P.dsn_parallel
        return fn(h, self.conv_weight, self.conv_bias, layer.tau, layer.levels, name, slope)[0]


class CanonicalSNN(nn.Module):
    """``forward(x [T, B, C], record_spikes) -> (spikes per spiking layer [T, B, N], readout [T, B, O])``;
    module ``layers.{i}`` holds spec layer ``i``, so parameter paths are the canonical weight names."""

    def __init__(self, net: NetworkSpec):
        super().__init__()
        self.spec = net
        self.surrogate = (net.surrogate.name, net.surrogate.slope)
        self.serial = False  # parallel-in-time neurons: use their step-by-step form
        self.in_shapes = net.input_shapes()
        shapes = weight_shapes(net)
        layers = []
        for i, (layer, n) in enumerate(zip(net.layers, net.sizes())):
            if layer.is_weight:
                layers.append(weight_module(layer, self.in_shapes[i], n))
            elif layer.type in ("maxpool", "flatten"):
                layers.append(nn.Identity())  # stateless: applied in forward
            elif layer.type in PARALLEL_TYPES:
                layers.append(ParallelNeuron(shapes, i))
            else:
                layers.append((RecurrentDecay if layer.recurrent else Decay)(layer.decay, n, layer.learn_beta))
        self.layers = nn.ModuleList(layers)

    def forward(self, x, record_spikes: bool = False):
        assert x.dim() == 3 and x.shape[-1] == self.spec.inputs, f"expected [T, B, C], got {tuple(x.shape)}"
        h, spikes = x, []
        T, B = x.shape[:2]
        for layer, module, in_shape in zip(self.spec.layers, self.layers, self.in_shapes):
            if layer.type == "linear":
                h = module(h)  # one GEMM over all T * B rows
            elif layer.type == "conv2d":  # all T * B images at once, flat [T, B, n] between layers
                h = module(h.reshape(T * B, *in_shape)).reshape(T, B, -1)
            elif layer.type == "maxpool":
                k, stride = int(layer.kernel), int(layer.stride)
                h = F.max_pool2d(h.reshape(T * B, *in_shape), k, stride).reshape(T, B, -1)
            elif layer.type == "flatten":
                pass
            elif layer.type == "li":
                return (spikes if record_spikes else []), P.lif_noreset_loop(h, module())
            else:
                if layer.type in PARALLEL_TYPES:
                    h = module.run(layer, h, self.surrogate, self.serial)
                else:
                    if layer.recurrent:  # V s_{t-1} inside the time loop (the synaptic current too, for cuba_lif)
                        alpha = layer.alpha if layer.type == "cuba_lif" else None
                        h = lif_recurrent_sequence(h, module.recurrent, module(), layer.threshold, layer.reset,
                                                   layer.detach_reset, self.surrogate, alpha)
                    else:
                        if layer.type == "cuba_lif":
                            h = P.lif_noreset_loop(h, layer.alpha)  # the synaptic current
                        h = lif_sequence(h, module(), layer.threshold, layer.reset, layer.detach_reset,
                                         self.surrogate)
                if layer.spike_from == "previous":
                    h = delay_one_step(h)
                spikes.append(h)
        return (spikes if record_spikes else []), spikes[-1]  # no LI readout: the last spike train is the output
