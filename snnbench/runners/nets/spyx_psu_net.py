"""Spyx 1.0's reset-free ``PSU_LIF`` as a spec network (``linear`` + ``lif_noreset`` pairs), for
:mod:`snnbench.runners.spyx_psu_runner`: ``flax.nnx.Linear`` over all ``T * B`` rows, then
``PSU_LIF.parallel`` (an associative scan over time) or, for the step-by-step form, ``PSU_LIF.__call__``
scanned by ``spyx.nn.run``."""

from __future__ import annotations

import spyx
from flax import nnx

from ...spec import NetworkSpec


def build(net: NetworkSpec, activation, rngs: nnx.Rngs) -> spyx.nn.Sequential:
    """The layers in a ``spyx.nn.Sequential`` (a container here: :func:`forward` runs it over the whole sequence)."""
    layers = []
    for layer, n, in_shape in zip(net.layers, net.sizes(), net.input_shapes()):
        if layer.type == "linear":
            layers.append(nnx.Linear(in_shape[0], n, use_bias=layer.bias, rngs=rngs))
        else:
            layers.append(spyx.nn.PSU_LIF((n,), beta=float(layer.beta), threshold=float(layer.threshold),
                                          activation=activation, rngs=rngs))
    return spyx.nn.Sequential(*layers)


def forward(model: spyx.nn.Sequential, x, serial: bool = False):
    """``x [T, B, C]`` -> spikes of every ``PSU_LIF`` layer, ``[T, B, n]`` each (the last is the output).
    ``serial``: each neuron stepped by ``spyx.nn.run`` over its ``__call__`` instead of ``parallel``."""
    h, spikes = x, []
    for layer in model.layers:
        if isinstance(layer, nnx.Linear):
            h = layer(h)  # acts on the last axis: all T * B rows in one product
        else:
            h = spyx.nn.run(layer, h)[0] if serial else layer.parallel(h)
            spikes.append(h)
    return spikes
