"""Rockpool 3 (SynSense), JAX backend: ``LinearJax`` -> ``LIFJax`` -> ... -> ``ExpSynJax`` readout,
each module evolved over the whole batch-major sequence by its own ``lax.scan`` and given its
weights functionally (``set_attributes``), as Rockpool's JAX training tutorials do; trained the way
the JAX runners here are (packed data on the device, one compiled epoch with optax). The network is
:mod:`.nets.rockpool_jax_net`.

Import: as for the torch runner (``rockpool``), Rockpool is imported only in the worker, through
:func:`.base.guarded_import` (its hardware kit ``samna`` would ``pip install`` itself on import).

Spec mapping (``dt`` = 1 ms, Rockpool's default; only the decays ``exp(-dt / tau)`` matter):

* ``linear`` -> ``LinearJax((in, out), has_bias)`` (weight ``[in, out]`` = canonical transposed).
* ``LIFJax`` computes ``i <- a_s (i + x)``, ``v <- a_m v + i + bias``, spikes, then ``v <- v - s th``.
  ``cuba_lif`` -> ``tau_syn`` with ``a_s = alpha``, ``tau_mem`` with ``a_m = beta``, fed ``x / alpha``:
  exactly the spec's ``syn <- alpha syn + x``. ``lif`` -> the same with a vanishing synaptic time
  constant (``a_s = 1e-12``, fed ``x / a_s``): the carried current is 1e-12 of the last step's.
  ``if`` -> ``tau_mem = inf``. The neuron ``bias`` (zero), time constants and threshold are
  Rockpool parameters; they are constants here (only the linear weights are trained).
* ``recurrent: true`` (``lif``, ``if``, ``cuba_lif``) -> ``LIFJax(has_rec=True)``, Rockpool's recurrent
  JAX LIF: the fed-back ``s_{t-1} @ w_rec`` joins the input in the synaptic current before its decay
  (the spec's place for ``cuba_lif``; for ``lif`` / ``if`` the vanishing synapse passes it on), so
  ``w_rec [from, to]`` gets the canonical ``V.T`` scaled by ``1 / a_s`` in the traced program, like
  the input (:mod:`.nets.rockpool_jax_net`). No bias, diagonal free, fed-back spike not detached
  (its gradient is step_pwl's, the surrogate deviation below).
* ``li`` readout -> ``ExpSynJax(tau)`` fed ``x / beta`` (it computes ``y <- beta (y + x)``).
* spike: ``v >= threshold`` (the spec: ``>``; only exact ties differ), one spike per step
  (``max_spikes_per_dt = 1``; Rockpool's default emits ``floor(v / th)``).
* ``1 / a`` for each module is computed in the traced program by the module's own expression, so
  that ``(x / a) * a`` rounds like ``x`` within an ulp.

Deviations (declared; the parity gate proves each against the reference configured that way):

* surrogate: ``LIFJax`` hard-codes its ``step_pwl`` spike, whose derivative is ``1 / threshold``
  wherever ``v >= threshold - 0.5`` (no hook replaces it, unlike the torch module's
  ``spike_generation_fn``): the reference with the ``rockpool_pwl`` surrogate.
* reset: as in the torch runner (:func:`.rockpool_runner.rockpool_deviations`): Rockpool subtracts
  the threshold before the next decay (the spec's ``subtract_decayed``) and through the spike's
  gradient (``detach_reset: false``).

Not expressed (skipped): convolutions (Rockpool's JAX modules are dense), ``reset: zero`` and
``none``, ``learn_beta``, ``spike_from: previous``, dtypes other than float32, and spiking layers
with different thresholds (the surrogate's size follows each layer's threshold, and the proof of
that deviation configures one surrogate per network).
"""

from __future__ import annotations

import numpy as np

from ..spec import Case, with_surrogate
from .base import Deviation, RunnerInfo, Support, package_present
from .jax_common import JaxRunnerBase
from .rockpool_runner import rockpool_deviations


class RockpoolJaxRunner(JaxRunnerBase):
    name = "rockpool-jax"
    framework = "rockpool"
    packages = ("jax", "jaxlib", "optax", "rockpool")
    colour = "#e377c2"
    idiomatic = "tests.benchmarks.idiomatic.rockpool_jax_shd"
    # LIFJax decays its input, so the tutorial net carries 1/alpha in its weights where the adapter scales
    # the current: membrane inputs round differently (measured: loss 5e-5, gradients 1e-3)
    idiomatic_tolerance = (1e-4, 1e-2)
    requires = ("jax", "optax", "jmp", "rockpool")
    extra = "rockpool-jax"
    neuron_types = frozenset({"lif", "if", "cuba_lif", "li"})
    resets = frozenset({"subtract", "subtract_decayed"})
    learn_beta_refusal = "trainable decays are not mapped to Rockpool"
    recurrent_types = frozenset({"lif", "if", "cuba_lif"})  # LIFJax(has_rec=True)
    idiomatic_recurrent = "tests.benchmarks.idiomatic.rockpool_jax_rec"
    dtype_refusal = ("measured (tests/test_precision.py): with its parameters and input cast to the low dtype, "
                     "Rockpool's JAX modules still compute in float32 (their time constants and state are float32; "
                     "the spikes come out float32), so it would not be mixed precision")

    @classmethod
    def available(cls) -> Support:
        found = package_present(*cls.requires)  # not imported here: see the module docstring
        return found if found.ok else Support.no(f"{found.reason} (pip install 'snnbench[{cls.extra}]')")

    def supports(self, case: Case) -> Support:
        for i, layer in enumerate(case.network.layers):
            if layer.type in ("conv2d", "maxpool", "flatten"):
                return Support.no(f"layer {i}: {layer.type} is not mapped to Rockpool (dense JAX modules only)")
        if len({layer.threshold for layer in case.network.layers if layer.spiking}) > 1:
            return Support.no("spiking layers with different thresholds: Rockpool's surrogate scales with each "
                              "one, and its proof configures one surrogate per network")
        return super().supports(case)

    def deviations(self, case: Case) -> list[Deviation]:
        found = rockpool_deviations(case)
        if any(layer.spiking for layer in case.network.layers):
            s = case.network.surrogate
            found.append(Deviation(f"surrogate is Rockpool's step_pwl, 1/threshold for v >= threshold - 0.5 "
                                   f"(spec: {s.name} slope {s.slope:g})", _rockpool_surrogate))
        return found

    def info(self) -> RunnerInfo:
        from importlib import metadata

        return RunnerInfo(
            framework="rockpool",
            version=metadata.version("rockpool"),
            mode=self._epoch_text() + "; LinearJax / LIFJax / ExpSynJax, each evolved by its own lax.scan",
            extra={"deviations": [d.text for d in self.deviations(self.case)], **self._common_extra()},
        )

    # ------------------------------------------------------------------------------- model
    def _build_model(self, case: Case, seed: int) -> None:
        from .nets.rockpool_jax_net import make_modules

        self._modules = make_modules(case.network, seed)

    def _apply(self, params, x):
        from .nets.rockpool_jax_net import run
        from .reference.model import NetOutput

        return NetOutput((), run(self._modules, params, x))

    def _apply_with_spikes(self, params, x):
        from .nets.rockpool_jax_net import run
        from .reference.model import NetOutput

        spikes, readout = run(self._modules, params, x, with_spikes=True)
        return NetOutput(spikes, readout)

    def _to_params(self, weights: dict[str, np.ndarray]):
        from .nets.rockpool_jax_net import to_params

        return to_params(weights)

    def _from_params(self, params) -> dict[str, np.ndarray]:
        from .nets.rockpool_jax_net import from_params

        return from_params(params)


def _rockpool_surrogate(case: Case) -> Case:
    threshold = next(layer.threshold for layer in case.network.layers if layer.spiking)
    return with_surrogate(case, "rockpool_pwl", 1.0 / float(threshold))
