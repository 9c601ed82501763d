"""NeuroBench's efficiency metrics, computed from the canonical weights and a runner's forward spikes,
so that one definition holds for every framework.

The definitions are NeuroBench 2.3's (``neurobench.metrics``), restated on snnbench's canonical network:

* ``params``: the number of trainable values (weights, biases, trainable decays).
* ``footprint_bytes``: the bytes a deployment stores: every parameter, plus each neuron layer's fixed
  constants (its decay ``beta`` unless trained, and a spiking layer's threshold), at float32 (master weights
  stay float32 at every precision, ``spec.PRECISION``). NeuroBench sums a torch model's parameters and
  buffers, so on an snnTorch model it also counts snnTorch's own bookkeeping buffers (see the cross-check in
  ``tests/test_efficiency.py``).
* ``activation_sparsity``: zero outputs over all outputs of the spiking layers, over every step and sample;
  ``layers[k].sparsity`` the same per spiking layer. The readout (``li``) is not an activation: its membrane
  feeds no synapse. (NeuroBench counts every ``snn.SpikingNeuron``, so an snnTorch readout ``Leaky``'s unused
  threshold output too.)
* ``synops``: synaptic operations of the weight layers (``linear``, ``conv2d``; biases excluded) per sample,
  over the ``T`` steps. ``dense``: every weight times every input. ``effective``: only non-zero weights times
  non-zero inputs; counted as accumulates (``effective_acs``) at a step whose layer input is all in
  ``{-1, 0, 1}`` over the batch (spikes: NeuroBench decides this per call, i.e. per step), and as
  multiply-accumulates (``effective_macs``) otherwise. A recurrent layer's ``V`` (``layers.{i}.recurrent``) is
  one more weight layer whose input at step ``t`` is the layer's own spikes of step ``t - 1`` (zeros at ``t = 0``,
  as snnTorch's ``RLeaky`` calls its recurrent ``nn.Linear`` every step): ``T n^2`` dense operations per sample,
  its effective ones accumulates (spikes).

Shapes: ``x`` is ``[B, T, C]`` (images flat in ``C, H, W`` order), each spike train ``[B, T, N]``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..spec import LayerSpec, NetworkSpec

#: what the figures follow, in every record that carries them
DEFINITION = "NeuroBench 2.3 (ParameterCount, Footprint, ActivationSparsity(ByLayer), SynapticOperations)"
BYTES_PER_VALUE = 4  # float32


def parameter_count(weights: dict[str, np.ndarray]) -> int:
    """Trainable values in canonical weights."""
    return int(sum(np.asarray(w).size for w in weights.values()))


def footprint_bytes(network: NetworkSpec, weights: dict[str, np.ndarray]) -> int:
    """Parameters plus the neuron layers' fixed constants (decay unless trained, threshold if spiking)."""
    constants = 0
    for layer in network.layers:
        if not layer.is_neuron:
            continue
        constants += 0 if layer.learn_beta else 1
        constants += 1 if layer.spiking else 0
    return (parameter_count(weights) + constants) * BYTES_PER_VALUE


def _binary(a: np.ndarray) -> np.ndarray:
    return (a != 0).astype(np.float64)


def _spiking_steps(h: np.ndarray) -> np.ndarray:
    """``[T]`` bool: the step's input over the whole batch lies in {-1, 0, 1} (NeuroBench's spike test)."""
    ok = (h == 0) | (h == 1) | (h == -1)
    return ok.reshape(h.shape[0], h.shape[1], -1).all(axis=(0, 2))


def _linear_ops(h: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """Effective ops per step ``[T]`` and dense ops of the whole batch, for ``h [B, T, in]``, ``w [out, in]``."""
    fan_out = _binary(w).sum(axis=0)  # non-zero weights leaving each input
    active = _binary(h).sum(axis=0)  # [T, in]: how often each input is non-zero at each step
    B, T, n_in = h.shape
    return active @ fan_out, float(B * T * n_in * w.shape[0])


def _conv_ops(h: np.ndarray, w: np.ndarray, stride: int, padding: int) -> tuple[np.ndarray, float]:
    """As :func:`_linear_ops` for ``h [B, T, C, H, W]`` and ``w [out, C, k, k]``: the sum over output positions
    of the binary convolution equals, tap by tap, the binary kernel's count over output channels times the
    inputs that tap reads; zero padding reads nothing."""
    B, T, C, H, W = h.shape
    k = w.shape[-1]
    taps = _binary(w).sum(axis=0)  # [C, k, k]
    active = np.pad(_binary(h).sum(axis=0), ((0, 0), (0, 0), (padding, padding), (padding, padding)))  # [T, C, Hp, Wp]
    inside = np.pad(np.ones((C, H, W)), ((0, 0), (padding, padding), (padding, padding)))
    ho, wo = (H + 2 * padding - k) // stride + 1, (W + 2 * padding - k) // stride + 1
    effective, dense = np.zeros(T), 0.0
    for i in range(k):
        for j in range(k):
            rows, cols = slice(i, i + stride * (ho - 1) + 1, stride), slice(j, j + stride * (wo - 1) + 1, stride)
            effective += active[:, :, rows, cols].sum(axis=(2, 3)) @ taps[:, i, j]
            dense += float(inside[:, rows, cols].sum()) * w.shape[0]
    return effective, dense * B * T


def _maxpool(h: np.ndarray, layer: LayerSpec) -> np.ndarray:
    """``h [B, T, C, H, W]`` pooled as the spec's ``maxpool`` (only the non-zero pattern matters here)."""
    k, s = int(layer.kernel), int(layer.stride)
    B, T, C, H, W = h.shape
    ho, wo = (H - k) // s + 1, (W - k) // s + 1
    out = np.full((B, T, C, ho, wo), -np.inf, dtype=h.dtype)
    for i in range(k):
        for j in range(k):
            out = np.maximum(out, h[:, :, :, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s])
    return out


def synaptic_operations(network: NetworkSpec, weights: dict[str, np.ndarray], x: np.ndarray,
                        spikes: list[np.ndarray]) -> dict[str, float]:
    """Dense and effective synaptic operations per sample (see the module docstring)."""
    if len(spikes) != len(network.hidden_sizes()):
        raise ValueError(f"{len(spikes)} spike trains for {len(network.hidden_sizes())} spiking layers")
    B, T = x.shape[:2]
    h, trains = x.reshape(B, T, *network.sample_shape), iter(spikes)
    acs = macs = dense = 0.0
    for i, (layer, shape_in) in enumerate(zip(network.layers, network.input_shapes())):
        if layer.is_weight:
            w = weights[f"layers.{i}.weight"]
            h = h.reshape(B, T, *shape_in)
            if layer.type == "linear":
                per_step, layer_dense = _linear_ops(h.reshape(B, T, -1), w)
            else:
                per_step, layer_dense = _conv_ops(h, w, int(layer.stride), int(layer.padding))
            spiking = _spiking_steps(h)
            acs += float(per_step[spiking].sum())
            macs += float(per_step[~spiking].sum())
            dense += layer_dense
        elif layer.spiking:
            h = next(trains)
            if layer.recurrent:  # V s_{t-1}: the layer's previous spikes through its recurrent weight
                prev = np.concatenate([np.zeros_like(h[:, :1]), h[:, :-1]], axis=1).reshape(B, T, -1)
                per_step, layer_dense = _linear_ops(prev, weights[f"layers.{i}.recurrent"])
                spiking = _spiking_steps(prev)
                acs += float(per_step[spiking].sum())
                macs += float(per_step[~spiking].sum())
                dense += layer_dense
        elif layer.type == "maxpool":
            h = _maxpool(h.reshape(B, T, *shape_in), layer)
    return {"dense": dense / B, "effective_macs": macs / B, "effective_acs": acs / B}


def activation_sparsity(network: NetworkSpec, spikes: list[np.ndarray]) -> tuple[float, list[dict[str, Any]]]:
    """Overall and per-spiking-layer sparsity (zero outputs / outputs)."""
    indices = [i for i, layer in enumerate(network.layers) if layer.spiking]
    layers, zeros, total = [], 0, 0
    for i, s in zip(indices, spikes):
        nonzero = int(np.count_nonzero(s))
        layers.append({"layer": i, "type": network.layers[i].type, "neurons": int(math.prod(s.shape[2:])),
                       "sparsity": (s.size - nonzero) / s.size if s.size else 0.0})
        zeros, total = zeros + s.size - nonzero, total + s.size
    return (zeros / total if total else 0.0), layers


def efficiency(network: NetworkSpec, weights: dict[str, np.ndarray], x: np.ndarray,
               spikes: list[np.ndarray]) -> dict[str, Any]:
    """Every metric of the module docstring for one batch ``x`` and the spikes it produced."""
    sparsity, layers = activation_sparsity(network, spikes)
    return {"params": parameter_count(weights), "footprint_bytes": footprint_bytes(network, weights),
            "activation_sparsity": sparsity, "layers": layers,
            "synops": synaptic_operations(network, weights, x, spikes),
            "samples": int(x.shape[0]), "definition": DEFINITION}
