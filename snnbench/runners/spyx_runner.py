"""Spyx 1.0 (Flax NNX) as a peer: the network is built from Spyx's own modules and run with
``spyx.nn.run`` (a ``lax.scan`` over time of the whole ``spyx.nn.Sequential``, one step at a time),
trained the way the Spyx paper does it (packed data on the device, one compiled epoch). The data
path is shared with the reference, so the comparison isolates the network's execution.

Spec mapping:

* ``linear`` -> ``flax.nnx.Linear`` (kernel ``[in, out]`` = canonical weight transposed).
* ``lif`` -> ``spyx.nn.LIF(beta, threshold)``; ``if`` -> ``spyx.nn.IF``; ``li`` -> ``spyx.nn.LI``.
* surrogate -> ``spyx.axn.superspike(k)`` and ``spyx.axn.triangular(k)`` where they are the canonical
  function; otherwise ``spyx.axn.custom`` with the canonical formula (Spyx's ``arctan(k)`` peaks at
  1/pi, not at slope/2, so it is not used).
* frozen decays (``learn_beta: false``): Spyx always makes beta a trainable ``nnx.Param``; its
  gradient is masked to zero so it stays fixed.

Deviations (declared, measured by the parity gate):

* **spike timing**: a Spyx LIF emits ``H(v_{t-1} - threshold)`` at step ``t``, before adding the
  step's input, so each spiking layer's output is one step later than canonical. Membranes follow
  the canonical equation, but everything downstream is delayed by one step per spiking layer.
* **reset gradient**: the subtractive reset is not detached (``detach_reset: true`` is not honoured).
* not expressible: ``reset: zero`` or ``none`` (Spyx's LIF only subtracts), ``cuba_lif``
  (``spyx.nn.CuBaLIF`` has its own parameterisation), dtypes other than float32 -> skipped.
"""

from __future__ import annotations

import numpy as np

from ..spec import Case, LayerSpec
from .base import RunnerInfo, Support
from .reference.runner import JaxRunnerBase


def _activation(name: str, slope: float):
    import jax.numpy as jnp
    import spyx

    if name == "superspike":
        return spyx.axn.superspike(k=slope)
    if name == "triangular":
        return spyx.axn.triangular(k=slope)
    from .reference.surrogates import surrogate_grad

    return spyx.axn.custom(bwd=lambda x: surrogate_grad(name, x, slope), fwd=lambda x: (x > 0).astype(jnp.float32))


class SpyxRunner(JaxRunnerBase):
    name = "spyx"
    framework = "spyx"
    requires = ("jax", "optax", "flax", "spyx")
    extra = "spyx"
    neuron_types = frozenset({"lif", "if", "li"})  # cuba_lif is not mapped to spyx.nn.CuBaLIF

    def supports(self, case: Case) -> Support:
        if case.spec.dtype != "float32":
            return Support.no(f"dtype {case.spec.dtype} not implemented for spyx")
        for i, layer in enumerate(case.network.layers):
            if layer.spiking and layer.reset != "subtract":
                return Support.no(f"layer {i}: spyx LIF only resets by subtraction (spec: {layer.reset})")
        return super().supports(case)

    def info(self) -> RunnerInfo:
        import flax
        import spyx

        return RunnerInfo(
            framework="spyx",
            version=getattr(spyx, "__version__", "?"),
            mode="jit epoch: lax.scan over batches; spyx.nn.run (lax.scan over time, per-step Sequential)",
            extra={"flax": flax.__version__, "deviations": self.deviations()},
        )

    def deviations(self) -> list[str]:
        devs = ["spikes one step late per spiking layer (Spyx fires on v_{t-1})"]
        if any(layer.spiking and layer.detach_reset for layer in self.case.network.layers):
            devs.append("reset not detached")
        return devs

    # ------------------------------------------------------------------------------- model
    def _make_layer(self, layer: LayerSpec, n_in: int, n: int, rngs):
        import spyx
        from flax import nnx

        s = self.case.network.surrogate
        if layer.type == "linear":
            return nnx.Linear(n_in, n, use_bias=layer.bias, rngs=rngs)
        beta = None if layer.learn_beta else layer.decay
        if layer.type == "li":
            return spyx.nn.LI((n,), beta=beta, rngs=rngs)
        act = _activation(s.name, s.slope)
        if layer.type == "if":
            return spyx.nn.IF((n,), threshold=layer.threshold, activation=act, rngs=rngs)
        return spyx.nn.LIF((n,), beta=beta, threshold=layer.threshold, activation=act, rngs=rngs)

    def _build_model(self, case: Case, seed: int) -> None:
        import spyx
        from flax import nnx

        rngs = nnx.Rngs(seed)
        layers, n_in = [], case.network.inputs
        for layer, n in zip(case.network.layers, case.network.sizes()):
            layers.append(self._make_layer(layer, n_in, n, rngs))
            n_in = n
        self.graphdef, state = nnx.split(spyx.nn.Sequential(*layers))
        self._template = nnx.to_pure_dict(state)

    def _apply(self, params, x):
        import spyx
        from flax import nnx

        from .reference.model import NetOutput

        readout, _ = spyx.nn.run(nnx.merge(self.graphdef, params), x)
        return NetOutput((), readout)

    def _apply_with_spikes(self, params, x):
        import spyx
        from flax import nnx

        from .reference.model import NetOutput

        model = nnx.merge(self.graphdef, params)
        spikes = []
        for i, layer in enumerate(self.case.network.layers):
            if layer.spiking:  # the prefix of the network up to this layer, run over time
                out, _ = spyx.nn.run(spyx.nn.Sequential(*model.layers[: i + 1]), x)
                spikes.append(out)
        readout, _ = spyx.nn.run(model, x)
        return NetOutput(tuple(spikes), readout)

    def _grad_mask(self, params):
        import jax
        import jax.numpy as jnp

        frozen = {i for i, layer in enumerate(self.case.network.layers) if layer.is_neuron and not layer.learn_beta}

        def mask(path, leaf):
            keys = [getattr(k, "key", None) for k in path]
            return jnp.zeros_like(leaf) if keys[-1] == "beta" and keys[1] in frozen else jnp.ones_like(leaf)

        return jax.tree_util.tree_map_with_path(mask, params)

    def _to_params(self, weights: dict[str, np.ndarray]):
        import jax.numpy as jnp

        params = {"layers": {i: dict(v) for i, v in self._template["layers"].items()}}
        for key, value in weights.items():
            _, i, kind = key.split(".")
            arr = np.asarray(value, np.float32)
            name = {"weight": "kernel", "bias": "bias", "beta": "beta"}[kind]
            params["layers"][int(i)][name] = jnp.asarray(arr.T if kind == "weight" else arr)
        return params

    def _from_params(self, params) -> dict[str, np.ndarray]:
        out = {}
        for i, leaves in params["layers"].items():
            layer = self.case.network.layers[int(i)]
            for name, value in leaves.items():
                arr = np.asarray(value, np.float32)
                if name == "kernel":
                    out[f"layers.{i}.weight"] = arr.T.copy()
                elif name == "bias":
                    out[f"layers.{i}.bias"] = arr
                elif name == "beta" and layer.learn_beta:
                    out[f"layers.{i}.beta"] = arr
        return out
