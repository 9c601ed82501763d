"""Spyx 1.0 (Flax NNX) as a peer: the network is built from Spyx's own modules and run with
``spyx.nn.run`` (a ``lax.scan`` over time of the whole ``spyx.nn.Sequential``, one step at a time),
trained the way the Spyx paper does it (packed data on the device, one compiled epoch). The data
path is shared with the reference, so the comparison isolates the network's execution.

Spec mapping:

* ``linear`` -> ``flax.nnx.Linear`` (kernel ``[in, out]`` = canonical weight transposed).
* ``conv2d`` -> ``flax.nnx.Conv`` (kernel ``[k, k, in, out]``), ``maxpool`` -> ``flax.nnx.max_pool``
  (Spyx has only a sum pool), ``flatten`` -> ``spyx.nn.Flatten``. Flax keeps images as
  ``[B, H, W, C]``: the input is transposed once per batch, neurons after a convolution have shape
  ``(H, W, C)``, and the first ``linear`` after a ``flatten`` gets its canonical weight columns
  permuted to ``H, W, C`` order (see :func:`feature_orders`).
* ``lif`` -> ``spyx.nn.LIF(beta, threshold)``; ``if`` -> ``spyx.nn.IF``; ``li`` -> ``spyx.nn.LI``.
* ``recurrent: true`` -> Spyx's own recurrent neurons, ``spyx.nn.RLIF(beta, threshold)`` (``lif``) and
  ``spyx.nn.RIF(threshold)`` (``if``). Their step (Spyx 1.0 ``nn.py``) is
  ``s = H(V - th); V <- beta V + x + s @ recurrent_w - th s``: the spike decided on ``v_{t-1}`` is
  both the reset and the fed-back spike, i.e. the canonical ``s_{t-1}``, so the membrane is the
  canonical ``v_t = beta v_{t-1} + I_t + s_{t-1} @ V.T - th s_{t-1}`` exactly (the recurrent input
  enters the membrane, before the threshold; no bias, no zeroed diagonal, not detached: it passes
  the surrogate's gradient, as the spec wants). Layout: ``recurrent_w [from, to]`` = ``V.T``
  (``feedback_j = sum_k s_k recurrent_w[k, j]``). ``beta`` is clipped to ``[0, 1]`` as in ``LIF``.
  The output spikes are one step late, as for every Spyx LIF (the ``spike_from`` deviation below).
* surrogate -> ``spyx.axn.superspike(k)`` and ``spyx.axn.triangular(k)`` where they are the canonical
  function; otherwise ``spyx.axn.custom`` with the canonical formula (Spyx's ``arctan(k)`` peaks at
  1/pi, not at slope/2, so it is not used).
* frozen decays (``learn_beta: false``): Spyx always makes beta a trainable ``nnx.Param``; its
  gradient is masked to zero so it stays fixed.

Spike timing: a Spyx LIF emits ``H(v_{t-1} - threshold)`` at step ``t``, before adding the step's
input, and resets with that spike: the spec's ``spike_from: previous``, which Spyx computes
exactly. Its membrane follows the canonical equation; each spiking layer's output is the canonical
one delayed by one step.

Deviations (declared; the parity gate proves each against the reference configured the same way):

* **spike timing**: on a ``spike_from: current`` case (the canonical default) the spikes are one
  step late per spiking layer: the reference with ``spike_from: previous`` computes the same.
* **reset gradient**: the subtractive reset is not detached (``detach_reset: true`` is not
  honoured): the reference with ``detach_reset: false``.
* not expressible: ``reset: zero`` or ``none`` (Spyx's LIF only subtracts), ``cuba_lif``
  (``spyx.nn.CuBaLIF`` has its own parameterisation; its recurrent ``RCuBaLIF`` likewise), a
  recurrent layer after a convolution (``RLIF`` multiplies flat spike vectors), dtypes other than
  float32 -> skipped.
"""

from __future__ import annotations

import numpy as np

from ..spec import Case, LayerSpec, with_reset_attached, with_spiking_layers
from .base import Deviation, RunnerInfo, Support
from .jax_common import JaxRunnerBase


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
    packages = ("jax", "jaxlib", "spyx", "flax", "optax", "jmp")
    colour = "#bcbd22"
    nir = "snnbench.interop.frameworks:SPYX"
    requires = ("jax", "optax", "jmp", "flax", "spyx")
    extra = "spyx"
    neuron_types = frozenset({"lif", "if", "li"})  # cuba_lif is not mapped to spyx.nn.CuBaLIF
    spike_timings = frozenset({"current", "previous"})  # previous exactly; current as a declared deviation
    recurrent_types = frozenset({"lif", "if"})  # spyx.nn.RLIF / spyx.nn.RIF
    idiomatic_recurrent = "tests.benchmarks.idiomatic.spyx_rec"
    dtype_refusal = ("measured (tests/test_precision.py): with its parameters and input cast to the low dtype (a jmp "
                     "policy), Spyx's neurons still compute in float32 (their state starts as float32; the spikes come "
                     "out float32), so it would not be mixed precision")

    def supports(self, case: Case) -> Support:
        for i, layer in enumerate(case.network.layers):
            if layer.spiking and layer.reset != "subtract":
                return Support.no(f"layer {i}: spyx LIF only resets by subtraction (spec: {layer.reset})")
            if layer.recurrent and len(case.network.shapes()[i]) != 1:
                return Support.no(f"layer {i}: spyx.nn.RLIF feeds back flat spike vectors; a recurrent layer after "
                                  "a convolution is not mapped")
        return super().supports(case)

    def info(self) -> RunnerInfo:
        import flax
        import spyx

        return RunnerInfo(
            framework="spyx",
            version=getattr(spyx, "__version__", "?"),
            mode=self._epoch_text() + "; spyx.nn.run (lax.scan over time, per-step Sequential)",
            extra={"flax": flax.__version__, "deviations": [d.text for d in self.deviations(self.case)],
                   **self._common_extra()},
        )

    def deviations(self, case: Case) -> list[Deviation]:
        spiking = [layer for layer in case.network.layers if layer.spiking]
        devs = []
        if any(layer.spike_from == "current" for layer in spiking):
            devs.append(Deviation("spikes one step late per spiking layer (Spyx fires on v_{t-1})",
                                  _spikes_from_previous))
        if any(layer.detach_reset for layer in spiking):
            devs.append(Deviation("reset not detached", with_reset_attached))
        return devs

    # ------------------------------------------------------------------------------- model
    def _make_layer(self, layer: LayerSpec, in_shape: tuple[int, ...], shape: tuple[int, ...], rngs):
        import spyx
        from flax import nnx

        s = self.case.network.surrogate
        if layer.type == "linear":
            return nnx.Linear(in_shape[0], shape[0], use_bias=layer.bias, rngs=rngs)
        if layer.type == "conv2d":
            k, p = int(layer.kernel), layer.padding
            return nnx.Conv(in_shape[0], int(layer.out), (k, k), strides=int(layer.stride), padding=[(p, p), (p, p)],
                            use_bias=layer.bias, rngs=rngs)
        if layer.type == "maxpool":
            from .nets.spyx_modules import MaxPool

            return MaxPool(int(layer.kernel), int(layer.stride))
        if layer.type == "flatten":
            return spyx.nn.Flatten()
        hidden = _nhwc(shape)
        beta = None if layer.learn_beta else layer.decay
        if layer.type == "li":
            return spyx.nn.LI(hidden, beta=beta, rngs=rngs)
        act = _activation(s.name, s.slope)
        if layer.type == "if":
            cls = spyx.nn.RIF if layer.recurrent else spyx.nn.IF
            return cls(hidden, threshold=layer.threshold, activation=act, rngs=rngs)
        cls = spyx.nn.RLIF if layer.recurrent else spyx.nn.LIF
        return cls(hidden, beta=beta, threshold=layer.threshold, activation=act, rngs=rngs)

    def _build_model(self, case: Case, seed: int) -> None:
        import spyx
        from flax import nnx

        rngs = nnx.Rngs(seed)
        net = case.network
        layers = [self._make_layer(layer, in_shape, shape, rngs)
                  for layer, in_shape, shape in zip(net.layers, net.input_shapes(), net.shapes())]
        self.graphdef, state = nnx.split(spyx.nn.Sequential(*layers))
        self._template = nnx.to_pure_dict(state)
        self._orders = feature_orders(net)
        self._image = len(net.sample_shape) == 3
        # each layer's input order (only a linear layer uses it; an image input never meets one)
        self._in_orders = [None if self._image else np.arange(net.sample_shape[0]), *self._orders[:-1]]

    def _time_major_input(self, x):
        """``[T, B, C*H*W]`` (canonical) -> ``[T, B, H, W, C]``, Flax's image layout."""
        if not self._image:
            return x
        T, B = x.shape[:2]
        return x.reshape(T, B, *self.case.network.sample_shape).transpose(0, 1, 3, 4, 2)

    def _apply(self, params, x):
        import spyx
        from flax import nnx

        from .reference.model import NetOutput

        readout, _ = spyx.nn.run(nnx.merge(self.graphdef, params), self._time_major_input(x))
        return NetOutput((), readout)

    def _apply_with_spikes(self, params, x):
        import spyx
        from flax import nnx

        from .reference.model import NetOutput

        model = nnx.merge(self.graphdef, params)
        x = self._time_major_input(x)
        spikes = []
        for i, layer in enumerate(self.case.network.layers):
            if layer.spiking:  # the prefix of the network up to this layer, run over time
                out, _ = spyx.nn.run(spyx.nn.Sequential(*model.layers[: i + 1]), x)
                out = out.reshape(*out.shape[:2], -1)[..., np.argsort(self._orders[i])]  # canonical order
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
        in_orders = self._in_orders
        for key, value in weights.items():
            _, i, kind = key.split(".")
            i = int(i)
            arr = np.asarray(value, np.float32)
            if kind == "weight" and arr.ndim == 4:  # conv [O, I, kh, kw] -> Flax [kh, kw, I, O]
                params["layers"][i]["kernel"] = jnp.asarray(arr.transpose(2, 3, 1, 0))
            elif kind == "weight":  # linear [out, in] -> [in, out], rows in Spyx's feature order
                params["layers"][i]["kernel"] = jnp.asarray(arr[:, in_orders[i]].T)
            elif kind == "bias":
                params["layers"][i]["bias"] = jnp.asarray(arr)
            elif kind == "recurrent":  # V [to, from] -> recurrent_w [from, to], in Spyx's feature order
                order = self._orders[i]
                params["layers"][i]["recurrent_w"] = jnp.asarray(arr[np.ix_(order, order)].T)
            else:  # per-neuron decay, in the layer's Spyx shape
                shape = self._template["layers"][i]["beta"].shape
                params["layers"][i]["beta"] = jnp.asarray(arr[self._orders[i]].reshape(shape))
        return params

    def _from_params(self, params) -> dict[str, np.ndarray]:
        in_orders = self._in_orders
        out = {}
        for i, leaves in params["layers"].items():
            i = int(i)
            layer = self.case.network.layers[i]
            for name, value in leaves.items():
                arr = np.asarray(value, np.float32)
                if name == "kernel" and arr.ndim == 4:
                    out[f"layers.{i}.weight"] = arr.transpose(3, 2, 0, 1).copy()
                elif name == "kernel":
                    w = np.empty((arr.shape[1], arr.shape[0]), np.float32)
                    w[:, in_orders[i]] = arr.T
                    out[f"layers.{i}.weight"] = w
                elif name == "bias":
                    out[f"layers.{i}.bias"] = arr
                elif name == "recurrent_w":
                    order = self._orders[i]
                    rec = np.empty_like(arr)
                    rec[np.ix_(order, order)] = arr.T
                    out[f"layers.{i}.recurrent"] = rec
                elif name == "beta" and layer.learn_beta:
                    beta = np.empty(arr.size, np.float32)
                    beta[self._orders[i]] = arr.ravel()
                    out[f"layers.{i}.beta"] = beta
        return out


def _spikes_from_previous(case: Case) -> Case:
    return with_spiking_layers(case, spike_from="previous")



def _nhwc(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A canonical ``(C, H, W)`` activity shape as Flax holds it, ``(H, W, C)``; flat shapes unchanged."""
    return (shape[1], shape[2], shape[0]) if len(shape) == 3 else tuple(shape)


def feature_orders(net) -> list[np.ndarray]:
    """For each layer's output: Spyx's flat feature ``r`` is canonical feature ``order[r]``.

    Flax keeps images as ``(H, W, C)``, so activity after a convolution, and the flat vector a
    ``Flatten`` makes of it, are in ``H, W, C`` order, where the canonical order is ``C, H, W``; a
    ``linear`` layer's output is in canonical order again.
    """
    orders, order = [], None
    shape = net.sample_shape
    if len(shape) == 3:
        order = np.arange(int(np.prod(shape))).reshape(shape).transpose(1, 2, 0).ravel()
    for layer, out_shape in zip(net.layers, net.shapes()):
        if layer.type in ("conv2d", "maxpool"):
            order = np.arange(int(np.prod(out_shape))).reshape(out_shape).transpose(1, 2, 0).ravel()
        elif layer.type == "linear":
            order = np.arange(out_shape[0])
        elif order is None:
            order = np.arange(int(np.prod(out_shape)))
        orders.append(order)
    return orders
