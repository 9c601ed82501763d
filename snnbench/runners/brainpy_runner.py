"""BrainPy (``brainpy.state`` neurons on brainstate, the maintained API; ``brainstate.nn.LIF`` is a
deprecated redirect): the network is a ``brainstate.nn.Module`` of ``brainstate.nn`` layers and
``brainpy.state`` neurons, stepped over time by ``brainstate.transform.for_loop``, and trained the
way the JAX runners here are (packed data on the device, one compiled epoch with optax). The module
is :class:`.nets.brainpy_net.BrainPyNet`; parameters are split from it with
``brainstate.graph.treefy_split`` and merged back into a fresh module inside each traced function,
so the step is a pure function of the parameters.

Spec mapping (``dt = 1``, no physical units):

* ``linear`` -> ``brainstate.nn.Linear`` (weight ``[in, out]``); ``conv2d`` / ``maxpool`` /
  ``flatten`` -> ``brainstate.nn.Conv2d(channel_first=True)`` / ``MaxPool2d`` / ``Flatten``, in the
  canonical ``[B, C, H, W]`` layout (kernel ``[kh, kw, in, out]``).
* ``lif`` -> ``brainpy.state.LIF(R = 1 / (1 - beta), tau = -dt / ln(beta), V_th = threshold,
  V_rest = 0, V_reset, spk_reset='soft')``: BrainPy's exact exponential-Euler step is then
  ``beta V + I``. Its soft reset subtracts ``V_th - V_reset`` before the decay:
  ``V_reset = threshold (1 - 1 / beta)`` gives the spec's ``subtract`` exactly, ``V_reset = 0`` its
  ``subtract_decayed`` (see :func:`.nets.brainpy_net.lif_constants`).
* ``recurrent: true`` (``lif``) -> BrainPy has no recurrent neuron class; recurrence is a projection
  from a population onto itself, its own idiom: ``brainpy.state.CurrentProj`` (``comm`` a bias-free
  ``brainstate.nn.Linear(n, n)``, ``out`` ``CUBA(scale=1)``) driven by the LIF's ``get_spike()`` each
  step before the LIF steps (:class:`.nets.brainpy_net.RecurrentLIF`): the current
  ``s_{t-1} @ V.T`` joins ``I_t`` in the LIF's own update, exactly the spec's recurrent term;
  canonical ``layers.{i}.recurrent`` = the projection's weight transposed (``[from, to]``).
* ``li`` readout -> ``brainpy.state.Expon(tau = -dt / ln(beta))``: ``g <- beta g + x``, the canonical
  leaky integrator (BrainPy's training tutorial reads out through an exponential synapse too).
* surrogate: BrainPy's spike function sees ``(V - V_th) / (V_th - V_reset)``; a
  ``braintools.surrogate.Surrogate`` subclass (its documented extension point) rescales so that the
  derivative in ``V`` is the spec's, for every surrogate (:class:`.nets.brainpy_net.CanonicalSurrogate`).
* spike at exactly the threshold: BrainPy fires at ``x >= 0``, the spec at ``> 0``; only exact ties
  differ (counted as flips by the parity gate).

Deviation (declared; the parity gate proves it): the soft reset always passes gradient through the
spike (``detach_reset: true`` is not honoured): the reference with ``detach_reset: false``.

Not expressed (skipped): ``reset: zero`` (BrainPy's hard reset stops the gradient of ``V`` inside
the reset term only, which no spec reset computes) and ``none``, ``if`` (BrainPy's ``IF`` leaks with
its own ``tau``), ``cuba_lif``, ``learn_beta``, ``spike_from: previous``, dtypes other than float32.
"""

from __future__ import annotations

import numpy as np

from ..spec import Case, with_reset_attached
from .base import Deviation, RunnerInfo, Support, package_present
from .jax_common import JaxRunnerBase


class BrainPyRunner(JaxRunnerBase):
    name = "brainpy"
    framework = "brainpy"
    packages = ("jax", "jaxlib", "optax", "brainpy", "brainpy_state", "brainstate", "braintools")
    colour = "#8c564b"
    idiomatic = "tests.benchmarks.idiomatic.brainpy_shd"
    requires = ("jax", "optax", "jmp", "brainstate", "braintools", "brainpy")
    extra = "brainpy"
    neuron_types = frozenset({"lif", "li"})
    resets = frozenset({"subtract", "subtract_decayed"})
    learn_beta_refusal = "trainable decays are not mapped to BrainPy"
    recurrent_types = frozenset({"lif"})  # brainpy.state.LIF + a CurrentProj of its own spikes
    idiomatic_recurrent = "tests.benchmarks.idiomatic.brainpy_rec"
    dtype_refusal = ("measured (tests/test_precision.py): with its parameters and input cast to the low dtype, "
                     "BrainPy's neurons still compute in float32 (their state variables are float32; the spikes come "
                     "out float32), so it would not be mixed precision")

    @classmethod
    def available(cls) -> Support:
        # found, not imported: ``import brainpy`` takes seconds (all of BrainPy), paid in the worker only
        found = package_present(*cls.requires)
        return found if found.ok else Support.no(f"{found.reason} (pip install 'snnbench[{cls.extra}]')")

    def supports(self, case: Case) -> Support:
        return super().supports(case)

    def deviations(self, case: Case) -> list[Deviation]:
        if any(layer.spiking and layer.detach_reset for layer in case.network.layers):
            return [Deviation("reset gradient not detached (BrainPy's soft reset; spec: detach_reset true)",
                              with_reset_attached)]
        return []

    def info(self) -> RunnerInfo:
        from importlib import metadata

        return RunnerInfo(
            framework="brainpy",
            version=metadata.version("brainpy"),
            mode=self._epoch_text() + "; brainpy.state neurons stepped by brainstate.transform.for_loop",
            extra={"brainstate": metadata.version("brainstate"), "braintools": metadata.version("braintools"),
                   "deviations": [d.text for d in self.deviations(self.case)], **self._common_extra()},
        )

    # ------------------------------------------------------------------------------- model
    def _build_model(self, case: Case, seed: int) -> None:
        import brainstate

        from .nets import brainpy_net

        brainstate.environ.set(dt=brainpy_net.DT)
        self._net = brainpy_net.BrainPyNet(case.network)
        self._graphdef, self._template, self._others = brainpy_net.split(self._net)

    def _run(self, params, x, with_spikes: bool):
        from .nets.brainpy_net import run

        return run(self._graphdef, self._template, self._others, params, x, with_spikes)

    def _apply(self, params, x):
        from .reference.model import NetOutput

        return NetOutput((), self._run(params, x, False))

    def _apply_with_spikes(self, params, x):
        from .reference.model import NetOutput

        spikes, readout = self._run(params, x, True)
        return NetOutput(tuple(spikes), readout)

    def _to_params(self, weights: dict[str, np.ndarray]):
        from .nets.brainpy_net import to_params

        return to_params(weights, self._net)

    def _from_params(self, params) -> dict[str, np.ndarray]:
        from .nets.brainpy_net import from_params

        return from_params(params)
