"""Norse 1.1: ``LIFBoxCell`` hidden layers and an ``LIBoxCell`` readout, each run over the time
steps of its input sequence; ``nn.Linear`` is applied to the whole ``[T, B, C]`` sequence at once
(the module is :class:`.nets.norse_net.NorseNet`).

Time loop: Norse's ``Lift`` (and its multi-step ``LIFBox``) index ``x[ts]``; on a sequence that
requires grad, each of the T indexings makes a zero-filled gradient buffer of the whole sequence in
the backward pass, so a training step took 104-107 ms against 82-84 ms for the same network
written as Norse's examples write it (per step, ``nn.Linear`` on ``x[ts]``). The adapter iterates
``x.unbind(0)`` instead (same loss and gradients); ``tests/benchmarks/idiomatic/norse_shd.py``
keeps that comparison honest.

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

``norse-compile`` runs the same module under ``torch.compile(fullgraph=True)``
(:class:`.torch_common.CompiledTorch`); the explicit initial state (see :class:`.nets.norse_net.OverTime`)
keeps it one graph per mode.

Not expressed (skipped): ``if`` (beta = 1 makes the input scale infinite), ``cuba_lif``,
``learn_beta`` (Norse keeps ``tau_mem_inv`` in its parameter tuple). bfloat16 and float16 run under
autocast (its neurons follow the low dtype).
"""

from __future__ import annotations

from ..spec import RESETS, Case, with_surrogate
from .base import Deviation, RunnerInfo
from .torch_common import CompiledTorch, TorchRunnerBase


def norse_method(name: str, slope: float) -> tuple[str, float, bool]:
    """(Norse threshold method, alpha, exact?) closest to the canonical surrogate."""
    if name == "superspike" and slope == 1.0:
        return "super", 1.0, True
    if name == "triangular" and slope == 1.0:
        return "triangle", 1.0, True
    return "super", 1.0, False


class NorseRunner(TorchRunnerBase):
    name = "norse"
    framework = "norse"
    package = "norse"
    packages = ("torch", "norse", "nir", "nirtorch")
    colour = "#1f77b4"
    idiomatic = "tests.benchmarks.idiomatic.norse_shd"
    nir = "snnbench.interop.frameworks:NORSE"
    # if (beta = 1 makes the input scale infinite) and cuba_lif are not mapped
    neuron_types = frozenset({"lif", "li"})
    resets = frozenset(RESETS)
    learn_beta_refusal = "trainable decay is not mapped to Norse"


    def make_model(self, case: Case):
        from .nets.norse_net import NorseNet

        return NorseNet(case.network)

    def deviations(self, case: Case) -> list[Deviation]:
        s = case.network.surrogate
        if not norse_method(s.name, s.slope)[2]:
            return [Deviation(f"surrogate {s.name}(slope {s.slope:g}) has no Norse equivalent: "
                              "SuperSpike 1/(1+|x|)^2 used", _superspike)]
        return []

    def info(self) -> RunnerInfo:
        import norse
        import torch

        version = getattr(norse, "__version__", None)
        if version is None:
            from importlib import metadata

            version = metadata.version("norse")
        return RunnerInfo(framework="norse", version=version,
                          mode="eager; nn.Linear over [T,B,C] + LIFBoxCell stepped over x.unbind(0)",
                          extra={"torch": torch.__version__, "threads": torch.get_num_threads(), **self.precision,
                                 "deviations": [d.text for d in self.deviations(self.case)]})


class NorseCompileRunner(CompiledTorch, NorseRunner):
    """The ``norse`` runner's network under ``torch.compile`` (compile time recorded apart)."""

    name = "norse-compile"
    eager_twin = "norse"
    mode = ("torch.compile(fullgraph=True, dynamic=False), inductor, of nn.Linear over [T,B,C] + LIFBoxCell "
            "stepped over x.unbind(0): one graph for the training step, one for evaluation")


def _superspike(case: Case) -> Case:
    return with_surrogate(case, "superspike", 1.0)
