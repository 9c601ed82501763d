"""The spec as a Norse network: ``LIFBoxCell`` hidden layers and an ``LIBoxCell`` readout, each run
over the time steps of its whole input sequence; weight layers see the whole sequence at once. A
recurrent layer is Norse's ``LIFRecurrentCell``, which owns the preceding linear's weight."""

from __future__ import annotations

import torch
from norse.torch import LIBoxCell, LIBoxParameters, LIFBoxCell, LIFBoxParameters, LIFParameters, LIFRecurrentCell
from norse.torch.functional.leaky_integrator_box import LIBoxState
from norse.torch.functional.lif import LIFState
from norse.torch.functional.lif_box import LIFBoxFeedForwardState
from torch import nn
from torch.nn.utils import parametrize

from ...spec import LayerSpec, NetworkSpec
from ..norse_runner import norse_method
from ..torch_common import weight_module


class CanonicalReset:
    """Norse's ``reset_method`` hook giving the canonical reset: Norse resets in the step that spikes,
    the canonical LIF at the next step before the decay, so subtract ``threshold / beta`` (the decay
    then removes exactly ``threshold``); ``threshold`` itself for subtract_decayed (Norse's own order);
    ``(1 - z) v`` for zero; nothing for none. A class, not a
    closure, so that the module pickles."""

    def __init__(self, kind: str, detach: bool, beta: float):
        self.kind, self.detach, self.beta = kind, detach, beta

    def __call__(self, z, v, v_reset, v_th):
        z = z.detach() if self.detach else z
        if self.kind == "subtract":
            return v - z * (v_th / self.beta)
        if self.kind == "subtract_decayed":
            return v - z * v_th
        if self.kind == "zero":
            return (1 - z) * v
        return v


class InputScale(nn.Module):
    """``x / (dt * tau_mem_inv)``, so that Norse's Euler step adds exactly the layer's current."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


class OverTime(nn.Module):
    """A Norse cell run over ``x [T, ...]``, its state carried from step to step: what
    ``norse.torch.Lift`` does, but iterating ``x.unbind(0)``. ``Lift`` indexes ``x[ts]``, and on an
    input that requires grad each of those T indexings builds and zero-fills a gradient buffer the
    size of the whole sequence in the backward pass (88% of a training step's CPU time under the
    profiler, 27% slower than Norse's own per-step loop); unbinding makes one.

    The initial state (membrane 0) is passed explicitly: Norse's own fallback sets
    ``requires_grad`` on a fresh tensor, which ``torch.compile`` cannot trace (a graph break per
    layer). The computation is the same."""

    def __init__(self, cell: nn.Module, state_type: type):
        super().__init__()
        self.cell = cell
        self.state_type = state_type

    def forward(self, x):
        state, out = self.state_type(v=torch.zeros_like(x[0])), []
        for x_t in x.unbind(0):
            z, state = self.cell(x_t, state)
            out.append(z)
        return torch.stack(out), state


class Scale(nn.Module):
    """A parametrization ``w -> w * factor``: the cell sees ``factor`` times the canonical weight it holds."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, w):
        return w * self.factor


class RecurrentLIF(nn.Module):
    """Norse's ``LIFRecurrentCell`` (input *and* recurrent weights its own) over ``x [T, B, n_in]``, the
    spec's preceding ``linear`` folded into it. Returns ``(spikes [T, B, n], last state)``.

    Norse's step (``functional.lif.lif_step``, dt = 1): ``j = i + W_in x_t + W_rec z_{t-1}``,
    ``v <- v + tau_mem_inv (v_leak - v + j)``, ``i <- j - tau_syn_inv j``, ``z = H(v - v_th)``, then
    ``v <- (1 - z) v`` (detached). With ``tau_mem_inv = 1 - beta``, ``v_leak = 0`` and the weights
    ``W / (1 - beta)``, ``V / (1 - beta)`` that is ``v_t = beta (1 - z_{t-1}) v_{t-1} + syn_t`` with
    ``syn_t = alpha syn_{t-1} + W x_t + V z_{t-1}`` (``tau_syn_inv = 1 - alpha``; ``1`` for a ``lif``:
    no synaptic memory): the spec's recurrent zero-reset LIF / cuba_lif. The cell holds the canonical
    ``W`` and ``V``; a :class:`Scale` parametrization hands it ``W / (1 - beta)`` and ``V / (1 - beta)``,
    computed once per sequence (``parametrize.cached``), so gradients and optimizer steps are the
    canonical weights'. ``autapses=True``: Norse's default (False) zeroes V's diagonal and its gradient.
    The initial state (all zeros) is passed explicitly, as in :class:`OverTime`."""

    def __init__(self, layer: LayerSpec, n_in: int, n: int, method: str, alpha: float):
        super().__init__()
        beta = float(layer.decay)
        syn_inv = 1.0 - float(layer.alpha) if layer.type == "cuba_lif" else 1.0
        p = LIFParameters(tau_syn_inv=torch.as_tensor(syn_inv), tau_mem_inv=torch.as_tensor(1.0 - beta),
                          v_leak=torch.as_tensor(0.0), v_th=torch.as_tensor(layer.threshold),
                          v_reset=torch.as_tensor(0.0), method=method, alpha=torch.as_tensor(alpha))
        self.n = n
        self.cell = LIFRecurrentCell(n_in, n, p, autapses=True, dt=1.0)
        for name in ("input_weights", "recurrent_weights"):
            parametrize.register_parametrization(self.cell, name, Scale(1.0 / (1.0 - beta)))

    def forward(self, x):
        zeros = x.new_zeros(x.shape[1], self.n)
        state, out = LIFState(z=zeros, v=zeros, i=zeros), []
        with parametrize.cached():
            for x_t in x.unbind(0):
                z, state = self.cell(x_t, state)
                out.append(z)
        return torch.stack(out), state


def folded(net: NetworkSpec) -> set[int]:
    """Indices of the ``linear`` layers folded into the recurrent Norse cell that follows them."""
    return {i - 1 for i, layer in enumerate(net.layers) if layer.recurrent}


class NorseNet(nn.Module):
    """``forward(x [T, B, C], record_spikes) -> (spikes per spiking layer [T, B, n], readout [T, B, O])``;
    module ``layers.{i}`` holds spec layer ``i``."""

    def __init__(self, net: NetworkSpec):
        super().__init__()
        self.spec = net
        self.in_shapes = net.input_shapes()
        method, alpha, _ = norse_method(net.surrogate.name, net.surrogate.slope)
        layers, into_cell = [], folded(net)
        for i, (layer, n) in enumerate(zip(net.layers, net.sizes())):
            if i in into_cell:  # its weight lives in the recurrent cell that follows
                layers.append(nn.Identity())
            elif layer.recurrent:
                layers.append(RecurrentLIF(layer, self.in_shapes[i - 1][0], n, method, alpha))
            elif layer.is_weight:
                layers.append(weight_module(layer, self.in_shapes[i], n))
            elif layer.type == "maxpool":
                layers.append(nn.MaxPool2d(int(layer.kernel), int(layer.stride)))
            elif layer.type == "flatten":
                layers.append(nn.Flatten(2))  # [T, B, C, H, W] -> [T, B, n]
            else:
                beta = float(layer.decay)
                tau = torch.as_tensor(1.0 - beta)
                if layer.type == "li":
                    cell, state_type = LIBoxCell(LIBoxParameters(tau_mem_inv=tau), dt=1.0), LIBoxState
                else:
                    p = LIFBoxParameters(tau_mem_inv=tau, v_th=torch.as_tensor(layer.threshold),
                                         v_reset=torch.as_tensor(0.0), method=method, alpha=torch.as_tensor(alpha),
                                         reset_method=CanonicalReset(layer.reset, layer.detach_reset, beta))
                    cell, state_type = LIFBoxCell(p, dt=1.0), LIFBoxFeedForwardState
                layers.append(nn.Sequential(InputScale(1.0 / (1.0 - beta)), OverTime(cell, state_type)))
        self.layers = nn.ModuleList(layers)

    def forward(self, x, record_spikes: bool = False):
        assert x.dim() == 3 and x.shape[-1] == self.spec.inputs, f"expected [T, B, C], got {tuple(x.shape)}"
        T, B = x.shape[:2]
        h, spikes = x.reshape(T, B, *self.in_shapes[0]), []
        for layer, module in zip(self.spec.layers, self.layers):
            if layer.type in ("linear", "flatten"):
                h = module(h)
                continue
            if layer.type in ("conv2d", "maxpool"):  # all T * B images at once
                h = module(h.flatten(0, 1))
                h = h.reshape(T, B, *h.shape[1:])
                continue
            h, _state = module(h)
            if layer.type == "li":
                return (spikes if record_spikes else []), h
            spikes.append(h.flatten(2))  # [T, B, n], canonical (C, H, W) order
        return (spikes if record_spikes else []), spikes[-1]  # no LI readout: the last spike train is the output
