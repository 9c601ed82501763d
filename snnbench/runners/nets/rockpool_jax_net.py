"""The spec as a chain of Rockpool 3 JAX modules (``LinearJax``, ``LIFJax``, ``ExpSynJax``), run the
way Rockpool's JAX tutorials run them: each module is a pytree, given its parameters with
``set_attributes`` and evolved over a whole batch-major ``[B, T, C]`` sequence by its own
``lax.scan``. Modules start every call from their stored (zero) state, as after ``reset_state()``.

A recurrent spiking layer is ``LIFJax(has_rec=True)``, Rockpool's recurrent JAX LIF: it steps
``i <- a_s (i + x_t + s_{t-1} @ w_rec)`` (the recurrent input enters the synaptic current, with the
feed-forward one, before the decay and the threshold), so ``w_rec [from, to]`` is given the canonical
``V.T`` scaled by ``1 / a_s`` inside the traced program, exactly as the input is: ``a_s (x / a_s +
s @ V.T / a_s)`` is the spec's ``I_t + s_{t-1} @ V.T`` within an ulp, and the gradient reaches the
canonical ``V`` through that scaling (no bias, diagonal free, the fed-back spike not detached).

Imported only by :mod:`snnbench.runners.rockpool_jax_runner`, inside a worker (Rockpool's import
is guarded: see :func:`..base.guarded_import`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ...spec import LayerSpec, NetworkSpec
from ..base import guarded_import

rockpool_modules = guarded_import("rockpool.nn.modules")

DT = 1e-3  # Rockpool's default time step (s); the time constants below are in the same unit
#: ``lif`` is LIFJax's limit of a vanishing synaptic time constant: a synaptic decay of 1e-12 keeps
#: 1e-12 of the previous step's current, below float32 resolution next to any non-zero input.
VANISHING_SYN_DECAY = 1e-12


def tau(decay: float) -> float:
    """The time constant (s) whose per-step decay ``exp(-DT / tau)`` is ``decay`` (inf for 1)."""
    return -DT / math.log(decay) if decay < 1.0 else math.inf


def make_modules(net: NetworkSpec, key: int = 0) -> list:
    """One Rockpool module per spec layer (``linear`` -> ``LinearJax``, ``lif`` / ``if`` /
    ``cuba_lif`` -> ``LIFJax``, ``li`` -> ``ExpSynJax``); neuron constants fixed at construction."""
    modules = []
    for i, (layer, n) in enumerate(zip(net.layers, net.sizes())):
        rng = jax.random.PRNGKey(key + i)  # Rockpool draws a random key per module otherwise
        if layer.type == "linear":
            modules.append(rockpool_modules.LinearJax((net.input_shapes()[i][0], n), has_bias=layer.bias))
        elif layer.type == "li":
            modules.append(rockpool_modules.ExpSynJax(n, tau=tau(layer.decay), dt=DT, rng_key=rng))
        else:
            modules.append(rockpool_modules.LIFJax(n, tau_mem=tau(layer.decay), tau_syn=tau(_syn_decay(layer)),
                                                   threshold=float(layer.threshold), dt=DT, rng_key=rng,
                                                   max_spikes_per_dt=1.0, has_rec=layer.recurrent))
    return modules


def _syn_decay(layer: LayerSpec) -> float:
    return float(layer.alpha) if layer.type == "cuba_lif" else VANISHING_SYN_DECAY


def _input_scale(module):
    """``1 / d`` for the module's own decay ``d`` (``LIFJax``: synaptic, ``ExpSynJax``: its one),
    computed by the same expression as in its ``evolve``: both add the input *before* decaying,
    ``s <- d (s + x)``, so fed ``x / d`` they compute the spec's ``s <- d s + x``."""
    decay_tau = module.tau_syn if hasattr(module, "tau_syn") else module.tau
    return 1.0 / jnp.exp(-module.dt / decay_tau)


def run(modules: list, params: dict, x, with_spikes: bool = False):
    """The network over time: ``x [T, B, C]`` -> readout ``[T, B, n_out]`` (and the spikes
    ``[T, B, n]`` of every spiking layer when ``with_spikes``), a pure function of ``params``
    (``{layer index: {'weight': [in, out], 'bias': [out]}}``, and ``{'w_rec': V.T}`` for a recurrent
    layer: ``[from, to]``, unscaled)."""
    h, spikes = jnp.swapaxes(x, 0, 1), []  # Rockpool is batch-major
    for i, module in enumerate(modules):
        if i in params and not isinstance(module, rockpool_modules.LIFJax):
            h, _, _ = module.set_attributes(params[i])(h)
            continue
        scale = _input_scale(module)
        if i in params:  # a recurrent LIFJax: its w_rec feeds the synapse too, so it is scaled like the input
            module = module.set_attributes({"w_rec": params[i]["w_rec"] * scale})
        h, _, _ = module(h * scale)
        if isinstance(module, rockpool_modules.LIFJax):
            spikes.append(jnp.swapaxes(h, 0, 1))
    readout = jnp.swapaxes(h, 0, 1)
    return (tuple(spikes), readout) if with_spikes else readout


def to_params(weights: dict[str, np.ndarray]) -> dict:
    """Canonical weights -> ``LinearJax`` parameters (weight ``[in, out]``) and a recurrent ``LIFJax``'s
    ``w_rec`` (``[from, to]`` = ``V.T``)."""
    params: dict = {}
    for key, value in weights.items():
        _, i, kind = key.split(".")
        arr = np.asarray(value, np.float32)
        name = "w_rec" if kind == "recurrent" else kind
        params.setdefault(int(i), {})[name] = jnp.asarray(arr.T if kind in ("weight", "recurrent") else arr)
    return params


def from_params(params: dict) -> dict[str, np.ndarray]:
    """Inverse of :func:`to_params`."""
    out = {}
    for i, leaves in params.items():
        for kind, value in leaves.items():
            arr = np.asarray(jax.device_get(value), np.float32)
            name = "recurrent" if kind == "w_rec" else kind
            out[f"layers.{int(i)}.{name}"] = np.ascontiguousarray(arr.T if kind in ("weight", "w_rec") else arr)
    return out
