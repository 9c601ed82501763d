"""The canonical network as a BrainPy / brainstate module (``brainpy.state`` neurons, ``brainstate.nn``
layers), and the conversion of canonical weights to and from its parameters.

Imported only by :mod:`snnbench.runners.brainpy_runner`, inside a worker that has BrainPy.
"""

from __future__ import annotations

import math

import brainstate
import braintools
import jax
import jax.numpy as jnp
import numpy as np
from brainpy import state as bp_state

from ...spec import LayerSpec, NetworkSpec
from ..reference.surrogates import surrogate_grad

#: brainstate's integration step; the decays below are exact for this ``dt`` (no physical units).
DT = 1.0


class CanonicalSurrogate(braintools.surrogate.Surrogate):
    """BrainPy's spike function with the spec's surrogate derivative.

    BrainPy's LIF hands its spike function ``x' = (V - V_th) / D`` with ``D = V_th - V_reset``, so a
    surrogate ``f`` of ``x'`` has derivative ``f'(x') / D`` in ``V``. This one returns
    ``D * g((V - V_th), slope)``, where ``g`` is the canonical derivative, so that ``d spike / d V``
    is the canonical ``g(V - V_th)``. The forward pass is BrainPy's own step, ``x' >= 0``.
    """

    def __init__(self, name: str, slope: float, divisor: float):
        super().__init__()
        self.name, self.slope, self.divisor = name, float(slope), float(divisor)

    def surrogate_grad(self, x):
        return self.divisor * surrogate_grad(self.name, self.divisor * x, self.slope)


def lif_constants(beta: float, threshold: float, reset: str) -> dict:
    """``brainpy.state.LIF`` arguments that compute the spec's LIF with ``dt = 1``.

    BrainPy integrates ``tau dV/dt = -(V - V_rest) + R I`` exactly over a step (exponential Euler of
    a linear equation): ``V <- e^{-dt/tau} V + (1 - e^{-dt/tau}) R I``. With ``tau = -dt / ln(beta)``
    and ``R = 1 / (1 - beta)`` that is ``beta V + I``. Its soft reset subtracts ``V_th - V_reset``
    *before* the decay: ``V_reset = 0`` is the spec's ``subtract_decayed``; ``V_reset =
    th (1 - 1 / beta)`` removes ``th / beta`` before the decay, i.e. ``th`` after it: ``subtract``.
    """
    v_reset = 0.0 if reset == "subtract_decayed" else threshold * (1.0 - 1.0 / beta)
    return dict(R=1.0 / (1.0 - beta), tau=-DT / math.log(beta), V_th=threshold, V_rest=0.0, V_reset=v_reset)


class RecurrentLIF(brainstate.nn.Module):
    """A recurrent ``lif`` the way BrainPy builds one: a ``brainpy.state.LIF`` population and a
    ``brainpy.state.CurrentProj`` from its own spikes back onto it (``comm`` a bias-free
    ``brainstate.nn.Linear(n, n)``, ``out`` a ``CUBA(scale=1)`` current), the projection driven with
    ``lif.get_spike()`` before the neuron steps, as BrainPy's recurrent training examples feed
    ``r.get_spike()`` back.

    Mapping (brainpy_state 0.1.0): ``get_spike()`` is the spike function of the stored ``V``, i.e.
    ``s_{t-1}`` with the surrogate's gradient (not detached); the projection binds ``s_{t-1} @ w`` as a
    current, which ``LIF.update(x)`` adds to ``x`` in ``sum_current_inputs(x, V)`` inside the same
    exponential-Euler step, after the soft reset: ``V_t = beta (V' ) + I_t + s_{t-1} @ V.T``, the
    spec's recurrent term in the membrane, before threshold, under the layer's reset. ``w`` is
    ``[from, to]`` = ``V.T``; no bias, diagonal free.
    """

    def __init__(self, lif, n: int):
        super().__init__()
        self.lif = lif
        comm = brainstate.nn.Linear(n, n, w_init=braintools.init.ZeroInit(), b_init=None)  # loaded by set_weights
        self.proj = bp_state.CurrentProj(comm=comm, out=bp_state.CUBA(scale=1.0), post=lif)

    def update(self, x):
        self.proj(self.lif.get_spike())
        return self.lif(x)


class BrainPyNet(brainstate.nn.Module):
    """The spec's layers as brainstate modules, one time step per ``update`` (``brainstate`` style).

    Images stay channel-first (``[B, C, H, W]``, ``channel_first=True``), the canonical layout, so
    canonical weights and activity need no permutation beyond the kernel's axes.
    """

    def __init__(self, net: NetworkSpec):
        super().__init__()
        self.sample_shape = tuple(net.sample_shape)
        self.spiking = [i for i, layer in enumerate(net.layers) if layer.spiking]
        self.layers = [_make_layer(layer, tuple(in_shape), tuple(shape), net)
                       for layer, in_shape, shape in zip(net.layers, net.input_shapes(), net.shapes())]

    def update(self, x):
        """One step: ``x [B, C]`` (flat canonical input) -> readout ``[B, n_out]``."""
        for layer in self.layers:
            x = layer(x)
        return x

    def record(self, x):
        """One step, also returning each spiking layer's output flattened to ``[B, n]``."""
        spikes = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.spiking:
                spikes.append(x.reshape(x.shape[0], -1))
        return tuple(spikes), x


def _make_layer(layer: LayerSpec, in_shape: tuple[int, ...], shape: tuple[int, ...], net: NetworkSpec):
    # weights made as zeros: the canonical ones are loaded right after (set_weights), and BrainState's default
    # truncated-normal draw cost 3 s of every job's build on its first use (3.1 s against 0.17 s, n 2048)
    zeros = braintools.init.ZeroInit()
    if layer.type == "linear":
        return brainstate.nn.Linear(in_shape[0], shape[0], w_init=zeros, b_init=zeros if layer.bias else None)
    if layer.type == "conv2d":
        p = int(layer.padding)
        return brainstate.nn.Conv2d(in_shape, int(layer.out), int(layer.kernel), stride=int(layer.stride),
                                    padding=[(p, p), (p, p)], channel_first=True, w_init=zeros,
                                    b_init=zeros if layer.bias else None)
    if layer.type == "maxpool":
        return brainstate.nn.MaxPool2d(int(layer.kernel), int(layer.stride), channel_axis=-3, in_size=in_shape)
    if layer.type == "flatten":
        return brainstate.nn.Flatten(in_size=in_shape)
    if layer.type == "li":  # an exponential synapse is BrainPy's leaky readout: g <- e^{-dt/tau} g + x
        return bp_state.Expon(shape, tau=-DT / math.log(layer.decay), g_initializer=braintools.init.Constant(0.0))
    constants = lif_constants(layer.decay, layer.threshold, layer.reset)
    s = net.surrogate
    spike = CanonicalSurrogate(s.name, s.slope, constants["V_th"] - constants["V_reset"])
    lif = bp_state.LIF(shape, **constants, V_initializer=braintools.init.Constant(0.0), spk_fun=spike,
                       spk_reset="soft")
    return RecurrentLIF(lif, shape[0]) if layer.recurrent else lif


def _input_image(x, sample_shape: tuple[int, ...]):
    """Flat canonical input ``[..., C*H*W]`` -> ``[..., C, H, W]`` for a convolutional network."""
    return x.reshape(*x.shape[:-1], *sample_shape) if len(sample_shape) == 3 else x


def run(graphdef, template, others, params, x, with_spikes: bool = False):
    """The network over time: ``x [T, B, C]`` -> readout ``[T, B, n_out]`` (and spikes ``[T, B, n]``
    per spiking layer when ``with_spikes``).

    A pure function of ``params``: a fresh module is merged from the split graph for each trace,
    its parameters set from ``params``, its state initialised for the batch, and
    ``brainstate.transform.for_loop`` steps it over time (BrainPy's own time loop).
    """
    net = brainstate.graph.treefy_merge(graphdef, template, others)
    for i, value in params.items():
        layer = net.layers[int(i)]
        if isinstance(layer, RecurrentLIF):
            layer.proj.comm.weight.value = {"weight": value["recurrent"]}
        else:
            layer.weight.value = value
    brainstate.nn.init_all_states(net, batch_size=x.shape[1])
    x = _input_image(x, net.sample_shape)
    if with_spikes:
        return brainstate.transform.for_loop(net.record, x)
    return brainstate.transform.for_loop(net.update, x)


def split(net: BrainPyNet):
    """``(graphdef, param_template, other_states)`` of a built network (see :func:`run`)."""
    return brainstate.graph.treefy_split(net, brainstate.ParamState, ...)


def to_params(weights: dict[str, np.ndarray], net: BrainPyNet) -> dict:
    """Canonical weights -> ``{layer index: {'weight': ..., 'bias': ...}}`` in brainstate's layouts:
    linear ``[in, out]``, convolution ``[kh, kw, in, out]``, the bias in the module's own shape; a
    recurrent layer's ``{'recurrent': V.T}`` (its projection's ``[from, to]`` weight)."""
    params: dict = {}
    for key, value in weights.items():
        _, i, kind = key.split(".")
        i = int(i)
        arr = np.asarray(value, np.float32)
        if kind == "recurrent":
            params.setdefault(i, {})[kind] = jnp.asarray(arr.T)
            continue
        template = net.layers[i].weight.value[kind]
        if kind == "weight":
            arr = arr.transpose(2, 3, 1, 0) if arr.ndim == 4 else arr.T
        params.setdefault(i, {})[kind] = jnp.asarray(arr.reshape(template.shape))
    return params


def from_params(params: dict) -> dict[str, np.ndarray]:
    """Inverse of :func:`to_params` (weights back in PyTorch's layouts, biases flat)."""
    out = {}
    for i, leaves in params.items():
        for kind, value in leaves.items():
            arr = np.asarray(jax.device_get(value), np.float32)
            if kind in ("weight", "recurrent"):
                arr = arr.transpose(3, 2, 0, 1) if arr.ndim == 4 else arr.T
            else:
                arr = arr.reshape(-1)
            out[f"layers.{int(i)}.{kind}"] = np.ascontiguousarray(arr)
    return out
