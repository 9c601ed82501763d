"""Spyx 1.0's reset-free parallel LIF, ``spyx.nn.PSU_LIF`` (``AssociativeLIF`` is the same class under
another name: a subclass that adds only two static beta converters), as the runner ``spyx-psu`` of the
long-sequence cases made of ``linear`` + ``lif_noreset`` pairs.

What it computes, read in ``spyx/nn.py``: ``PSU_LIF.parallel(x)`` runs ``V_t = beta V_{t-1} + x_t``
(``V_{-1} = 0``, ``beta`` clipped to [0, 1]) as a ``jax.lax.associative_scan`` over time with the affine
combine ``(A_i, b_i), (A_j, b_j) -> (A_j A_i, A_j b_i + b_j)``, then ``s_t = activation(V_t - threshold)``:
no reset, one state (the membrane), the spike decided on the same step's membrane. That is the spec's
``lif_noreset`` exactly (the reference's ``method: assoc`` is the same scan). Its ``__call__`` is the
same recurrence one step at a time, which :meth:`SpyxPsuRunner.serial_forward` runs with ``spyx.nn.run``
(the ``parallel_error`` record: Spyx's claim that both modes agree).

Spec mapping: ``linear`` -> ``flax.nnx.Linear`` (kernel = canonical weight transposed) over all ``T * B``
rows; ``lif_noreset`` (any ``method``) -> ``PSU_LIF((n,), beta, threshold, activation)``; the surrogate as
the ``spyx`` runner maps it (``spyx.axn.superspike`` / ``triangular`` or ``spyx.axn.custom`` with the
canonical formula); ``beta`` is an ``nnx.Param`` in Spyx, its gradient masked so it stays fixed. Every
field is expressed exactly. Not expressed (skipped with the reason): other neurons (a reset, PSN, DSN,
the ``li`` readout), convolutions, ``relu: true``, ``learn_beta``, dtypes other than float32. The network
lives in :mod:`.nets.spyx_psu_net`.
"""

from __future__ import annotations

import numpy as np

from ..spec import Case
from .base import ForwardResult, RunnerInfo, Support
from .jax_common import JaxRunnerBase


class SpyxPsuRunner(JaxRunnerBase):
    name = "spyx-psu"
    framework = "spyx"
    requires = ("jax", "optax", "jmp", "flax", "spyx")
    extra = "spyx"
    neuron_types = frozenset({"lif_noreset"})
    learn_beta_refusal = "trainable decays of the parallel neurons are not mapped (the reference's lif_noreset has none)"
    dtype_refusal = "PSU_LIF's parallel form is not measured at low precision here"

    def supports(self, case: Case) -> Support:
        for i, layer in enumerate(case.network.layers):
            if layer.type not in ("linear", "lif_noreset"):
                return Support.no(f"layer {i}: {layer.type} is not expressed by {self.name} (only linear + "
                                  "lif_noreset pairs: PSU_LIF has no reset and no readout)")
            if layer.type == "lif_noreset" and layer.relu:
                return Support.no(f"layer {i}: PSU_LIF's membrane is not clipped at 0 (relu: true)")
        return super().supports(case)

    def info(self) -> RunnerInfo:
        import flax
        import spyx

        return RunnerInfo(framework="spyx", version=getattr(spyx, "__version__", "?"),
                          mode=self._epoch_text() + "; flax.nnx.Linear over T*B rows + spyx.nn.PSU_LIF.parallel "
                                                    "(jax.lax.associative_scan over time)",
                          extra={"flax": flax.__version__, **self._common_extra()})

    # ------------------------------------------------------------------------------- model
    def _build_model(self, case: Case, seed: int) -> None:
        from flax import nnx

        from .nets.spyx_psu_net import build
        from .spyx_runner import _activation

        s = case.network.surrogate
        self.graphdef, state = nnx.split(build(case.network, _activation(s.name, s.slope), nnx.Rngs(seed)))
        self._template = nnx.to_pure_dict(state)

    def _apply(self, params, x, serial: bool = False):
        from flax import nnx

        from .nets.spyx_psu_net import forward
        from .reference.model import NetOutput

        spikes = forward(nnx.merge(self.graphdef, params), x, serial)
        return NetOutput(tuple(spikes), spikes[-1])

    def serial_forward(self, x: np.ndarray) -> ForwardResult:
        """The network with every ``PSU_LIF`` stepped by ``spyx.nn.run`` over its ``__call__``."""
        import jax

        xt, _ = self._dense(x, np.zeros(len(x)))
        out = jax.jit(lambda params, x: self._apply(*self._to_compute(params, x), serial=True))(self.params, xt)
        return ForwardResult(spikes=[np.swapaxes(np.asarray(s, np.float32), 0, 1) for s in out.spikes],
                             readout=np.swapaxes(np.asarray(out.readout, np.float32), 0, 1))

    def _grad_mask(self, params):
        import jax
        import jax.numpy as jnp

        def mask(path, leaf):  # PSU_LIF's beta is an nnx.Param: held fixed, as the spec's decay is
            return jnp.zeros_like(leaf) if getattr(path[-1], "key", None) == "beta" else jnp.ones_like(leaf)

        return jax.tree_util.tree_map_with_path(mask, params)

    def _to_params(self, weights: dict[str, np.ndarray]):
        import jax.numpy as jnp

        params = {"layers": {i: dict(v) for i, v in self._template["layers"].items()}}
        for key, value in weights.items():
            _, i, kind = key.split(".")
            arr = np.asarray(value, np.float32)
            params["layers"][int(i)]["kernel" if kind == "weight" else kind] = jnp.asarray(
                arr.T if kind == "weight" else arr)
        return params

    def _from_params(self, params) -> dict[str, np.ndarray]:
        out = {}
        for i, leaves in params["layers"].items():
            for name, value in leaves.items():
                arr = np.asarray(value, np.float32)
                if name == "kernel":
                    out[f"layers.{int(i)}.weight"] = arr.T.copy()
                elif name == "bias":
                    out[f"layers.{int(i)}.bias"] = arr
        return out
