"""Rockpool 3 (SynSense), torch backend: ``LIFNeuronTorch`` (Rockpool's LIF without a synapse) fed by
``nn.Linear``, an ``ExpSynTorch`` readout, batch-major ``[B, T, C]`` and each module's state reset
before every batch (the module is :class:`.nets.rockpool_net.RockpoolNet`).

Import: ``import rockpool`` looks for ``samna`` (SynSense's hardware kit), whose PyPI package runs
``pip install`` against an external index when imported; the adapter imports Rockpool only in the
worker, through :func:`.base.guarded_import` (pip cannot reach an index, so that call fails at once).

Spec mapping:

* ``lif`` -> ``LIFNeuronTorch(tau_mem = -dt / ln(beta), threshold, dt, max_spikes_per_dt=1)``:
  ``v <- exp(-dt / tau_mem) v + I``, the decay is beta. ``LIFTorch`` is not used: its synaptic
  current multiplies the input by the synaptic decay before it reaches the membrane. ``if`` ->
  ``tau_mem = inf``. Rockpool's ``tau_mem``, ``threshold`` and neuron ``bias`` are trainable by
  default; frozen here (constants of the spec).
* ``li`` readout -> ``ExpSynTorch(tau)`` fed ``I / beta`` (it computes ``y <- beta (y + x)``).
* spike: Rockpool's ``spike_generation_fn`` hook with one spike where ``v > threshold`` and the
  canonical surrogate (:class:`.nets.rockpool_net.CanonicalSpike`); ``max_spikes_per_dt=1``.
* reset: Rockpool subtracts the threshold in the step that spikes, before the next decay, and
  through the spike's gradient: the spec's ``subtract_decayed`` with ``detach_reset: false``,
  which it computes exactly. It cannot express ``subtract`` (``beta * threshold`` is removed by
  the next step, not ``threshold``) nor a detached reset: such cases run as Rockpool computes them,
  a declared deviation that the parity gate proves against the reference configured that way.

* ``recurrent: true`` (``lif``, ``if``) -> Rockpool's recurrent ``LIFTorch(has_rec=True)`` (the only
  Rockpool torch LIF with recurrent weights; ``LIFNeuronTorch`` has none). Its recurrent input enters
  the synaptic current, ``i <- b (i + x + s_{t-1} @ w_rec)``, which it decays before the membrane; the
  synapse-free canonical layer is its ``b -> 0`` limit, taken as ``b = 2^-32`` with the threshold
  scaled by the same power of two (membrane ``2^-32 v``, spikes and gradients the canonical ones, the
  synaptic carry-over ``2^-32`` of a step's current: below float32 resolution; proof in
  :func:`.nets.rockpool_net.recurrent_lif`). ``w_rec [from, to]`` = canonical ``layers.{i}.recurrent``
  transposed (no bias, diagonal free, fed-back spike not detached). The reset deviations below apply
  unchanged: the recurrent term is added before Rockpool's ``subtract_decayed`` rule, as the spec adds it.

Not expressed (skipped): ``reset: zero`` and ``none``, ``cuba_lif``, ``learn_beta``, convolutions
(Rockpool's torch modules are dense), ``spike_from: previous``, dtypes other than float32.
"""

from __future__ import annotations

from ..spec import Case, with_reset, with_reset_attached
from .base import Deviation, RunnerInfo, Support, package_present
from .torch_common import TorchRunnerBase


class RockpoolRunner(TorchRunnerBase):
    name = "rockpool"
    framework = "rockpool"
    package = "rockpool"
    packages = ("torch", "rockpool")
    colour = "#9467bd"
    idiomatic = "tests.benchmarks.idiomatic.rockpool_shd"
    nir = "snnbench.interop.frameworks:ROCKPOOL"
    batch_major = True
    neuron_types = frozenset({"lif", "if", "li"})
    resets = frozenset({"subtract", "subtract_decayed"})
    learn_beta_refusal = "trainable decays are not mapped to Rockpool"
    recurrent_types = frozenset({"lif", "if"})  # LIFTorch(has_rec=True)
    idiomatic_recurrent = "tests.benchmarks.idiomatic.rockpool_rec"
    dtypes = frozenset({"float32"})  # measured: tests/test_precision.py
    dtype_refusal = ("under torch.autocast Rockpool's LIFTorch computes in float32 (its time constants, threshold "
                     "and state are float32; the spikes come out float32), so it would not be mixed precision")

    @classmethod
    def available(cls) -> Support:
        return package_present("torch", "rockpool")  # not imported here: see the module docstring

    def supports(self, case: Case) -> Support:
        base = super().supports(case)
        if not base.ok:
            return base
        for i, layer in enumerate(case.network.layers):
            if layer.type in ("conv2d", "maxpool"):
                return Support.no(f"layer {i}: {layer.type} is not mapped to Rockpool (dense modules only)")
        return Support.yes()

    def make_model(self, case: Case):
        from .nets.rockpool_net import RockpoolNet

        return RockpoolNet(case.network)

    def param_names(self) -> dict[str, str]:
        names = super().param_names()
        for i, layer in enumerate(self.case.network.layers):
            if layer.recurrent:
                names[f"layers.{i}.recurrent"] = f"layers.{i}.w_rec"
        return names

    def _canonical(self, name: str, tensor):
        """``w_rec`` is ``[from, to]``: the canonical ``V [to, from]`` is its transpose."""
        return super()._canonical(name, tensor.T if name.endswith(".recurrent") else tensor)

    def set_weights(self, weights) -> None:
        super().set_weights({k: v.T if k.endswith(".recurrent") else v for k, v in weights.items()})

    def deviations(self, case: Case) -> list[Deviation]:
        return rockpool_deviations(case)

    def info(self) -> RunnerInfo:
        from importlib import metadata

        import torch

        return RunnerInfo(framework="rockpool", version=metadata.version("rockpool"),
                          mode="eager; batch-major nn.Linear + rockpool LIFNeuronTorch (its time loop), ExpSynTorch readout",
                          extra={"torch": torch.__version__, "threads": torch.get_num_threads(), **self.precision,
                                 "deviations": [d.text for d in self.deviations(self.case)]})


def rockpool_deviations(case: Case) -> list[Deviation]:
    """What Rockpool's LIF (torch and JAX) computes instead of the spec's subtract / detached reset."""
    spiking = [layer for layer in case.network.layers if layer.spiking]
    found = []
    if any(layer.reset == "subtract" and layer.type in ("lif", "cuba_lif") for layer in spiking):
        found.append(Deviation("reset subtracts the threshold before the decay (spec: subtract; Rockpool "
                               "computes subtract_decayed)", _decayed))
    if any(layer.detach_reset for layer in spiking):
        found.append(Deviation("reset gradient not detached (spec: detach_reset true)", with_reset_attached))
    return found


def _decayed(case: Case) -> Case:
    return with_reset(case, "subtract", "subtract_decayed")
