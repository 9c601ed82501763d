"""Norse 1.1: ``LIFBoxCell`` hidden layers and an ``LIBoxCell`` readout, each lifted over time with
``norse.torch.Lift``; ``nn.Linear`` is applied to the whole ``[T, B, C]`` sequence at once.

Convolutions are ``nn.Conv2d`` and ``nn.MaxPool2d`` over all ``T * B`` images at once (what
``Lift(nn.Conv2d)`` computes, without its Python loop over time); the cells run on ``[T, B, C, H, W]``.

Norse integrates an ODE: ``v <- v + dt * tau_mem_inv * (v_leak - v + i)``, so with ``dt = 1`` and
``v_leak = 0`` one step is ``v <- beta * v + (1 - beta) * i`` with ``beta = 1 - tau_mem_inv``. The
adapter sets ``tau_mem_inv = 1 - beta`` and feeds ``i = I / (1 - beta)`` (the linear layer's output
scaled), which gives the canonical membrane up to float rounding.

Norse resets in the step that spikes (``v' = reset(z_t, v_t)``), while the canonical LIF subtracts
at the next step *before* the decay. The adapter passes its own ``reset_method`` (Norse's documented
hook): ``v - z * threshold / beta`` for subtract (the decay then removes exactly ``threshold``),
``(1 - z) * v`` for zero, ``v`` for none, with ``z`` detached when the spec detaches the reset.
With that, spikes and membranes follow the canonical equations.

Surrogates: Norse chooses the spike function by name (``method``). ``superspike`` with slope 1 is
Norse's ``"super"`` exactly (1.1.0 ignores ``alpha``: ``1 / (1 + |x|)^2``); ``triangular`` with slope
1 is ``"triangle"`` with ``alpha = 1``. Any other surrogate runs with ``"super"`` and is a declared
deviation (gradients differ; forward is identical).

Not expressed (skipped): ``if`` (beta = 1 makes the input scale infinite), ``cuba_lif``,
``learn_beta`` (Norse keeps ``tau_mem_inv`` in its parameter tuple), dtypes other than float32.
"""

from __future__ import annotations

from ..spec import Case, NetworkSpec
from .base import RunnerInfo, Support
from .torch_common import TorchRunnerBase, conv2d_module


def norse_method(name: str, slope: float) -> tuple[str, float, bool]:
    """(Norse threshold method, alpha, exact?) closest to the canonical surrogate."""
    if name == "superspike" and slope == 1.0:
        return "super", 1.0, True
    if name == "triangular" and slope == 1.0:
        return "triangle", 1.0, True
    return "super", 1.0, False


def _reset_method(kind: str, detach: bool, beta: float):
    def reset(z, v, v_reset, v_th):
        z = z.detach() if detach else z
        if kind == "subtract":
            return v - z * (v_th / beta)
        if kind == "zero":
            return (1 - z) * v
        return v

    return reset


def build_norse_module(net: NetworkSpec):
    import torch
    from norse.torch import LIBoxCell, LIBoxParameters, LIFBoxCell, LIFBoxParameters, Lift
    from torch import nn

    method, alpha, _ = norse_method(net.surrogate.name, net.surrogate.slope)

    class Scale(nn.Module):
        """Input scaling ``1 / (dt * tau_mem_inv)`` so that Norse's Euler step adds exactly ``I``."""

        def __init__(self, factor: float):
            super().__init__()
            self.factor = factor

        def forward(self, x):
            return x * self.factor

    in_shapes = net.input_shapes()

    class NorseNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.spec = net
            layers = []
            for i, (layer, n) in enumerate(zip(net.layers, net.sizes())):
                if layer.type == "linear":
                    layers.append(nn.Linear(in_shapes[i][0], n, bias=layer.bias))
                    continue
                if layer.type == "conv2d":
                    layers.append(conv2d_module(layer, in_shapes[i][0]))
                    continue
                if layer.type == "maxpool":
                    layers.append(nn.MaxPool2d(int(layer.kernel), int(layer.stride)))
                    continue
                if layer.type == "flatten":
                    layers.append(nn.Flatten(2))  # [T, B, C, H, W] -> [T, B, n]
                    continue
                beta = float(layer.decay)
                tau = torch.as_tensor(1.0 - beta)
                if layer.type == "li":
                    cell = LIBoxCell(LIBoxParameters(tau_mem_inv=tau), dt=1.0)
                else:
                    p = LIFBoxParameters(tau_mem_inv=tau, v_th=torch.as_tensor(layer.threshold),
                                         v_reset=torch.as_tensor(0.0), method=method, alpha=torch.as_tensor(alpha),
                                         reset_method=_reset_method(layer.reset, layer.detach_reset, beta))
                    cell = LIFBoxCell(p, dt=1.0)
                layers.append(nn.Sequential(Scale(1.0 / (1.0 - beta)), Lift(cell)))
            self.layers = nn.ModuleList(layers)

        def forward(self, x):
            assert x.dim() == 3 and x.shape[-1] == self.spec.inputs, f"expected [T, B, C], got {tuple(x.shape)}"
            T, B = x.shape[:2]
            h, spikes = x.reshape(T, B, *in_shapes[0]), []
            for layer, module in zip(self.spec.layers, self.layers):
                if layer.type in ("linear", "flatten"):
                    h = module(h)
                    continue
                if layer.type in ("conv2d", "maxpool"):  # all T * B images at once
                    h = module(h.flatten(0, 1))
                    h = h.reshape(T, B, *h.shape[1:])
                    continue
                h, _state = module(h)  # Lift returns (outputs [T, B, ...], final state)
                if layer.type == "li":
                    return spikes, h
                spikes.append(h.flatten(2))  # [T, B, n], canonical (C, H, W) order
            return spikes, spikes[-1]  # no LI readout: the last spike train is the output

    return NorseNet()


class NorseRunner(TorchRunnerBase):
    name = "norse"
    framework = "norse"
    package = "norse"
    # if (beta = 1 makes the input scale infinite) and cuba_lif are not mapped
    neuron_types = frozenset({"lif", "li"})

    def supports(self, case: Case) -> Support:
        base = super().supports(case)
        if not base.ok:
            return base
        for i, layer in enumerate(case.network.layers):
            if layer.is_neuron and layer.learn_beta:
                return Support.no(f"layer {i}: trainable decay is not mapped to Norse")
        return Support.yes()

    def make_model(self, case: Case):
        return build_norse_module(case.network)

    def deviations(self) -> list[str]:
        s = self.case.network.surrogate
        if not norse_method(s.name, s.slope)[2]:
            return [f"surrogate {s.name}(slope {s.slope:g}) has no Norse equivalent: SuperSpike 1/(1+|x|)^2 used"]
        return []

    def info(self) -> RunnerInfo:
        import norse
        import torch

        version = getattr(norse, "__version__", None)
        if version is None:
            from importlib import metadata

            version = metadata.version("norse")
        return RunnerInfo(framework="norse", version=version,
                          mode="eager; nn.Linear over [T,B,C] + norse.torch.Lift(LIFBoxCell) over time",
                          extra={"torch": torch.__version__, "threads": torch.get_num_threads(),
                                 "deviations": self.deviations()})
