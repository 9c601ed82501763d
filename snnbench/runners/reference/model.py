"""Haiku shells around :mod:`.neurons`, the network built from a spec, and pure loss functions.

Layer-at-a-time evaluation: each weight layer is one GEMM over all ``T * B`` rows, then the neuron
layer scans element-wise over time. This is exact for feed-forward weights and turns ``T`` small matrix
products into one large one; a recurrent layer's own ``V s_{t-1}`` product is the one left inside its
scan (:func:`.neurons.lif_recurrent`), its ``V`` owned by the :class:`Neuron` shell.
"""

from __future__ import annotations

from typing import NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from ...spec import LayerSpec, NetworkSpec
from . import conv, dense, neurons, parallel


class NetOutput(NamedTuple):
    spikes: tuple[jax.Array, ...]  # per spiking layer, time-major [T, B, N]
    readout: jax.Array  # [T, B, O]


class Neuron(hk.Module):
    """Thin Haiku shell: owns the (optionally trainable) decay and a recurrent layer's ``recurrent``
    (``V [n, n]``, canonical layout), delegates the dynamics."""

    def __init__(self, layer: LayerSpec, size: int, surrogate: tuple[str, float], unroll: int, name: str,
                 serial: bool = False):
        super().__init__(name=name)
        self.layer, self.size, self.surrogate, self.unroll = layer, size, surrogate, unroll
        self.serial = serial  # parallel-in-time neurons: run their step-by-step form instead

    def _lif_kwargs(self) -> dict:
        layer, (name, slope) = self.layer, self.surrogate
        return dict(threshold=layer.threshold, reset=layer.reset, detach_reset=layer.detach_reset, surrogate=name,
                    slope=slope, unroll=self.unroll)

    def _beta(self, dtype) -> jax.Array | float:
        if self.layer.learn_beta:
            return hk.get_parameter("beta", [self.size], dtype, init=hk.initializers.Constant(self.layer.decay))
        return self.layer.decay

    def _param(self, name: str, shape) -> jax.Array:
        # Initial values always come from the canonical weights (set_weights); zeros here only shape them.
        return hk.get_parameter(name, list(shape), jnp.float32, init=jnp.zeros)

    def _parallel(self, current: jax.Array) -> neurons.LIFOutput:
        """Parallel-in-time neurons; the ``membrane`` slot holds their pre-activation ``H``."""
        layer, (name, slope) = self.layer, self.surrogate
        T, n = current.shape[0], self.size
        if layer.type == "lif_noreset":
            fn = {"scan": parallel.lif_noreset_scan, "assoc": parallel.lif_noreset_assoc,
                  "fft": parallel.lif_noreset_fft}["scan" if self.serial else layer.method]
            if layer.relu:  # the membrane clipped at zero (snnTorch's LeakyParallel): step by step, any method
                fn = parallel.lif_noreset_relu
            v = fn(current, layer.beta)
            return neurons.LIFOutput(neurons.spike(v - layer.threshold, name, slope), v)
        if layer.type in ("psn", "masked_psn"):
            w, b = self._param("psn_weight", (T, T)), self._param("psn_bias", (T,))
            if layer.type == "psn":
                return neurons.LIFOutput(*parallel.psn(current, w, b, name, slope))
            return neurons.LIFOutput(*parallel.masked_psn(current, w, b, layer.k, name, slope))
        if layer.type == "sliding_psn":
            taps, bias = self._param("taps", (layer.k,)), self._param("tap_bias", ())
            return neurons.LIFOutput(*parallel.sliding_psn(current, taps, bias, name, slope))
        w, b = self._param("conv_weight", (layer.k, n)), self._param("conv_bias", (n,))
        fn = parallel.dsn_serial if self.serial else parallel.dsn_parallel
        out, h = fn(current, w, b, layer.tau, layer.levels, name, slope)
        return neurons.LIFOutput(out, h.astype(current.dtype))

    def __call__(self, current: jax.Array, bias: jax.Array | None = None) -> jax.Array | neurons.LIFOutput:
        """``bias``: the preceding linear layer's, for a layer :func:`fuses_bias` accepts."""
        if bias is not None:
            return neurons.lif(current, 1.0 if self.layer.type == "if" else self._beta(current.dtype), bias=bias,
                               **self._lif_kwargs())
        if self.layer.type in parallel_types():
            return self._parallel(current)
        layer, beta = self.layer, self._beta(current.dtype)
        if layer.type == "li":
            return neurons.leaky_integrator(current, beta, unroll=self.unroll)
        kw = self._lif_kwargs()
        if layer.recurrent:  # V s_{t-1} depends on the previous step: inside the scan
            recurrent = self._param("recurrent", (self.size, self.size))
            alpha = layer.alpha if layer.type == "cuba_lif" else None
            return neurons.lif_recurrent(current, recurrent, 1.0 if layer.type == "if" else beta, alpha=alpha, **kw)
        # method fixed_point: the same spikes, chunks of the sequence in parallel (serial: step by step)
        lif = parallel.lif_fixed_point if layer.method == "fixed_point" and not self.serial else neurons.lif
        if layer.type == "cuba_lif":
            return lif(neurons.synaptic_current(current, layer.alpha, self.unroll), beta, **kw)
        if layer.type == "if":
            return lif(current, 1.0, **kw)
        return lif(current, beta, **kw)


class Dense(hk.Module):
    """Thin Haiku shell over :func:`.dense.dense`: owns ``w [in, out]`` and ``b [out]`` (``hk.Linear``'s
    names and layout); ``transpose_copy`` as in :func:`.dense.weight_grad`."""

    def __init__(self, out: int, with_bias: bool, transpose_copy: bool, name: str):
        super().__init__(name=name)
        self.out, self.with_bias, self.transpose_copy = out, with_bias, transpose_copy

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        """``x [M, in]`` -> ``(x @ w [M, out], b or None)``: the caller adds the bias, or hands it to the
        next neuron's time loop (:func:`fuses_bias`)."""
        w = hk.get_parameter("w", [x.shape[-1], self.out], x.dtype, init=jnp.zeros)
        b = hk.get_parameter("b", [self.out], x.dtype, init=jnp.zeros) if self.with_bias else None
        return dense.dense(x, w, self.transpose_copy), b


class Conv2D(hk.Module):
    """Thin Haiku shell over :func:`.conv.conv2d`: owns ``w [out, in, k, k]`` (canonical, OIHW) and ``b``;
    takes and returns channels-last frames ``[N, H, W, C]``."""

    def __init__(self, layer: LayerSpec, in_channels: int, name: str):
        super().__init__(name=name)
        self.layer, self.in_channels = layer, in_channels

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        """``(conv2d without its bias, b or None)``: the caller adds the bias or hands it on (:func:`fuses_bias`)."""
        layer, k = self.layer, int(self.layer.kernel)
        w = hk.get_parameter("w", [int(layer.out), self.in_channels, k, k], x.dtype, init=jnp.zeros)
        b = hk.get_parameter("b", [int(layer.out)], x.dtype, init=jnp.zeros) if layer.bias else None
        return conv2d(x, w, None, int(layer.stride), layer.padding), b


def conv2d(x: jax.Array, w: jax.Array, b: jax.Array | None, stride: int, padding: int) -> jax.Array:
    """PyTorch's ``Conv2d`` on channels-last frames: ``x [N, H, W, C]``, ``w [O, C, k, k]`` (canonical)
    -> ``[N, H', W', O]``. Stride 1 runs as patches and GEMMs (:mod:`.conv`); any other stride as XLA's
    convolution."""
    hwio = w.transpose(2, 3, 1, 0)
    if stride == 1:
        if padding:
            x = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
        y = conv.conv2d(x, hwio)
    else:
        y = jax.lax.conv_general_dilated(x, hwio, (stride, stride), [(padding, padding)] * 2,
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y if b is None else y + b


def channels_last(h: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """``[T, B, C*H*W]`` (canonical order) -> ``[T, B, H*W*C]``; ``shape`` is ``(C, H, W)``."""
    T, B = h.shape[:2]
    return h.reshape(T, B, *shape).transpose(0, 1, 3, 4, 2).reshape(T, B, -1)


def channels_first(h: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Inverse of :func:`channels_last`: ``[T, B, H*W*C]`` -> canonical ``[T, B, C*H*W]``."""
    C, H, W = shape
    T, B = h.shape[:2]
    return h.reshape(T, B, H, W, C).transpose(0, 1, 4, 2, 3).reshape(T, B, -1)


def fuses_bias(layer: LayerSpec, following: LayerSpec | None) -> bool:
    """A linear or convolution layer whose bias the next layer adds inside its time loop
    (:func:`.neurons.lif`'s ``bias``): a plain LIF or IF, feed-forward, run by the sequential scan (after a
    convolution, on channels-last frames as they are). The bias's own pass over ``[T, B, n]`` took 3.2-4.8
    ms of a training step on XLA:CPU (SHD's two hidden layers, the layer suite's n 2048)."""
    if layer.type not in ("linear", "conv2d") or not layer.bias or following is None:
        return False
    plain = following.type in ("lif", "if") and not following.recurrent and following.method == "scan"
    return plain and (layer.type == "linear" or keeps_layout(following))


def keeps_layout(layer: LayerSpec) -> bool:
    """A neuron layer whose every neuron runs the same element-wise dynamics (no per-neuron parameter, no
    recurrent weights): it can run on channels-last frames as they are."""
    return layer.type in ("lif", "if", "cuba_lif") and not layer.learn_beta and not layer.recurrent


def parallel_types() -> tuple[str, ...]:
    from ...spec import PARALLEL_TYPES

    return PARALLEL_TYPES


def make_network(net: NetworkSpec, unroll: int = 1, serial: bool = False,
                 transpose_copy: bool = False) -> hk.Transformed:
    """A Haiku network ``x [T, B, C] -> NetOutput``; module ``layer{i}`` holds spec layer ``i``.

    ``serial``: parallel-in-time neurons use their sequential (inference) form, to measure how far
    the parallel training form is from it. ``unroll`` and ``transpose_copy`` are the backend's speed
    knobs (:func:`.neurons.lif`, :func:`.dense.weight_grad`): they do not change what is computed."""
    sizes = net.sizes()
    in_shapes = net.input_shapes()
    surrogate = (net.surrogate.name, net.surrogate.slope)

    def forward(x: jax.Array) -> NetOutput:
        T, B = x.shape[:2]
        h, spikes, bias = x, [], None  # bias: a linear layer's, left to the next neuron (fuses_bias)
        last = False  # h is channels-last [T, B, H*W*C] between conv, pool and element-wise neuron layers
        for i, (layer, n) in enumerate(zip(net.layers, sizes)):
            # Stateless layers see all T * B rows at once; the flat [T, B, n] layout is kept between layers.
            shape = in_shapes[i]
            fused = fuses_bias(layer, net.layers[i + 1] if i + 1 < len(net.layers) else None)
            if layer.type in ("conv2d", "maxpool"):
                h = h if last else channels_last(h, shape)
                last = True
                frames = h.reshape(T * B, *shape[1:], shape[0])
                if layer.type == "conv2d":
                    frames, b = Conv2D(layer, shape[0], name=f"layer{i}")(frames)
                    if b is not None and fused:  # per channel, over channels-last [H * W * C]
                        bias = jnp.tile(b, n // b.shape[0])
                    elif b is not None:
                        frames = frames + b
                else:
                    frames = conv.max_pool(frames, int(layer.kernel), int(layer.stride))
                h = frames.reshape(T, B, n)
                continue
            if last and not (layer.is_neuron and keeps_layout(layer)):
                h, last = channels_first(h, shape), False
            if layer.type == "linear":
                h, bias = Dense(n, layer.bias, transpose_copy, name=f"layer{i}")(h.reshape(T * B, -1))
                h = h.reshape(T, B, n)
                if bias is not None and not fused:
                    h, bias = h + bias, None
            elif layer.type == "flatten":
                pass  # already flat
            else:
                out = Neuron(layer, n, surrogate, unroll, name=f"layer{i}", serial=serial)(h, bias)
                bias = None
                if layer.type == "li":
                    return NetOutput(tuple(spikes), out)
                h = out.spikes if layer.spike_from == "current" else neurons.delay_one_step(out.spikes)
                spikes.append(channels_first(h, shape) if last else h)  # recorded in canonical order
        return NetOutput(tuple(spikes), spikes[-1])  # no LI readout: the last spike train is the output

    return hk.without_apply_rng(hk.transform(forward))


# ------------------------------------------------------------------------------------- weights


def to_haiku(weights: dict[str, np.ndarray]) -> dict[str, dict[str, jax.Array]]:
    """Canonical ``layers.{i}.weight [out, in]`` -> Haiku ``layer{i}/w [in, out]`` (and b, beta);
    conv weights keep the canonical ``[out, in, k, k]``."""
    params: dict[str, dict[str, jax.Array]] = {}
    for key, value in weights.items():
        _, i, kind = key.split(".")
        name = {"weight": "w", "bias": "b"}.get(kind, kind)
        arr = np.asarray(value, np.float32)
        linear = kind == "weight" and arr.ndim == 2  # conv weights stay OIHW
        params.setdefault(f"layer{i}", {})[name] = jnp.asarray(arr.T if linear else arr)
    return params


def from_haiku(params) -> dict[str, np.ndarray]:
    """Inverse of :func:`to_haiku`."""
    out = {}
    for module, leaves in params.items():
        i = module.removeprefix("layer")
        for name, value in leaves.items():
            kind = {"w": "weight", "b": "bias"}.get(name, name)
            arr = np.asarray(value, np.float32)
            out[f"layers.{i}.{kind}"] = arr.T.copy() if kind == "weight" and arr.ndim == 2 else arr
    return out


# -------------------------------------------------------------------------------------- losses


def logits_from_readout(readout: jax.Array, mode: str, population: int = 1) -> jax.Array:
    """``readout [T, B, O]`` -> class scores ``[B, O / population]``, the loss's logits: the trace reduced
    over time (time-mean ``"mean"``, max ``"max"``, last step ``"last"``, spike count ``"count"``), then
    each class's ``population`` consecutive outputs pooled (:func:`population_scores`)."""
    if mode == "last":
        reduced = readout[-1]
    elif mode == "count":
        reduced = time_sum(readout)
    else:
        reduced = time_sum(readout) / readout.shape[0] if mode == "mean" else readout.max(axis=0)
    return population_scores(reduced, mode, population)


def time_sum(trace: jax.Array) -> jax.Array:
    """``trace [T, ...]`` summed over time by :func:`.neurons.row_sum`: at the layer suite's n 2048,
    ``[100, 16, 2048]``, 0.29 ms where ``sum(axis=0)`` took 9.3 ms on XLA:CPU."""
    return neurons.row_sum(trace)


def population_scores(reduced: jax.Array, mode: str, population: int) -> jax.Array:
    """``[B, C * P]`` -> ``[B, C]``: output ``c * P + p`` counts for class ``c``; a spike count is summed over
    the population, any other reduction averaged (the spec's population-coded readout)."""
    if population == 1:
        return reduced
    pooled = reduced.reshape(*reduced.shape[:-1], -1, population)
    return pooled.sum(axis=-1) if mode == "count" else pooled.mean(axis=-1)


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy over the batch; ``labels`` are int class indices ``[B]``."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return -jnp.take_along_axis(logp, labels[:, None], axis=-1).mean()

