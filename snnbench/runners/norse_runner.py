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

Recurrent layers (``recurrent: true``, ``lif`` and ``cuba_lif``): Norse's ``LIFRecurrentCell`` owns its
input and recurrent weights, so the preceding ``linear`` (which must have no bias: the cell has none)
is folded into it (:class:`.nets.norse_net.RecurrentLIF`): ``layers.{i-1}.weight`` and
``layers.{i}.recurrent`` are the cell's ``input_weights`` and ``recurrent_weights``, held canonical and
handed to the cell times ``1 / (1 - beta)`` (the input scale above). ``autapses=True`` (Norse's default,
False, zeroes V's diagonal and its gradient). The cell is current-based: ``tau_syn_inv = 1 - alpha``
for a ``cuba_lif``, ``1`` for a ``lif`` (the synaptic current then holds nothing over). Its reset is
fixed: ``v`` set to ``v_reset = 0`` in the step that spikes, ``z`` detached, which is the spec's zero
reset (detached) exactly; on a ``subtract`` / ``subtract_decayed`` recurrent layer that is a declared
deviation (proven by the reference with ``reset: zero``), and ``detach_reset: false`` runs detached
(declared). ``reset: none`` is skipped. The recurrent spike ``z`` keeps its gradient.

Not expressed (skipped): ``if`` (beta = 1 makes the input scale infinite), ``cuba_lif`` other than
recurrent, ``learn_beta`` (Norse keeps ``tau_mem_inv`` in its parameter tuple). bfloat16 and float16 run under
autocast (its neurons follow the low dtype).
"""

from __future__ import annotations

import dataclasses

from ..spec import RESETS, Case, with_surrogate
from .base import Deviation, RunnerInfo, Support
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
    idiomatic_recurrent = "tests.benchmarks.idiomatic.norse_rec_shd"
    nir = "snnbench.interop.frameworks:NORSE"
    # if (beta = 1 makes the input scale infinite) is not mapped; cuba_lif only as a recurrent layer
    # (LIFRecurrentCell is current-based)
    neuron_types = frozenset({"lif", "li", "cuba_lif"})
    resets = frozenset(RESETS)
    learn_beta_refusal = "trainable decay is not mapped to Norse"
    recurrent_types = frozenset({"lif", "cuba_lif"})  # LIFRecurrentCell(autapses=True), the linear folded in

    def supports(self, case: Case) -> Support:
        layers = case.network.layers
        for i, layer in enumerate(layers):
            if layer.type == "cuba_lif" and not layer.recurrent:
                return Support.no(f"layer {i}: cuba_lif neurons are not implemented for norse (only as a "
                                  "recurrent layer, LIFRecurrentCell)")
            if not layer.recurrent:
                continue
            if layer.reset == "none":
                return Support.no(f"layer {i}: Norse's LIFRecurrentCell always resets (to v_reset); spec: reset none")
            before = layers[i - 1]
            if before.type != "linear":
                return Support.no(f"layer {i}: Norse's LIFRecurrentCell owns its input weights, so a recurrent "
                                  f"layer must follow a linear layer (here: {before.type})")
            if before.bias:
                return Support.no(f"layer {i}: Norse's LIFRecurrentCell owns its input weights and has no bias "
                                  f"(layer {i - 1} has bias: true)")
        return super().supports(case)

    def param_names(self) -> dict[str, str]:
        names = super().param_names()
        cell = "layers.{}.cell.parametrizations.{}.original"  # the canonical weights, scaled by the Scale
        for i, layer in enumerate(self.case.network.layers):
            if layer.recurrent:
                names[f"layers.{i - 1}.weight"] = cell.format(i, "input_weights")
                names[f"layers.{i}.recurrent"] = cell.format(i, "recurrent_weights")
        return names


    def make_model(self, case: Case):
        from .nets.norse_net import NorseNet

        return NorseNet(case.network)

    def deviations(self, case: Case) -> list[Deviation]:
        s, found = case.network.surrogate, []
        if not norse_method(s.name, s.slope)[2]:
            found.append(Deviation(f"surrogate {s.name}(slope {s.slope:g}) has no Norse equivalent: "
                                   "SuperSpike 1/(1+|x|)^2 used", _superspike))
        rec = [layer for layer in case.network.layers if layer.recurrent]
        if any(layer.reset in ("subtract", "subtract_decayed") for layer in rec):
            found.append(Deviation("recurrent layer resets to zero: Norse's LIFRecurrentCell sets v to v_reset "
                                   f"after a spike (spec: {', '.join(sorted({layer.reset for layer in rec}))})",
                                   _recurrent_zero_reset))
        if any(not layer.detach_reset for layer in rec):
            found.append(Deviation("recurrent layer's reset always detached (Norse's LIFRecurrentCell; spec: "
                                   "detach_reset false)", _recurrent_reset_detached))
        return found

    def info(self) -> RunnerInfo:
        import norse
        import torch

        version = getattr(norse, "__version__", None)
        if version is None:
            from importlib import metadata

            version = metadata.version("norse")
        rec = any(layer.recurrent for layer in self.case.network.layers)
        return RunnerInfo(framework="norse", version=version,
                          mode="eager; nn.Linear over [T,B,C] + LIFBoxCell stepped over x.unbind(0)"
                               + ("; recurrent layers: LIFRecurrentCell (its linear folded in) stepped over x.unbind(0)"
                                  if rec else ""),
                          extra={"torch": torch.__version__, "threads": torch.get_num_threads(), **self.precision,
                                 "deviations": [d.text for d in self.deviations(self.case)]})


class NorseCompileRunner(CompiledTorch, NorseRunner):
    """The ``norse`` runner's network under ``torch.compile`` (compile time recorded apart)."""

    name = "norse-compile"
    eager_twin = "norse"
    mode = ("torch.compile(fullgraph=True, dynamic=False), inductor, of nn.Linear over [T,B,C] + LIFBoxCell "
            "stepped over x.unbind(0): one graph for the training step, one for evaluation")


def _on_recurrent_layers(case: Case, **fields) -> Case:
    layers = tuple(dataclasses.replace(layer, **fields) if layer.recurrent else layer for layer in case.network.layers)
    return dataclasses.replace(case, network=dataclasses.replace(case.network, layers=layers))


def _recurrent_zero_reset(case: Case) -> Case:
    return _on_recurrent_layers(case, reset="zero")


def _recurrent_reset_detached(case: Case) -> Case:
    return _on_recurrent_layers(case, detach_reset=True)


def _superspike(case: Case) -> Case:
    return with_surrogate(case, "superspike", 1.0)
