"""snnbench's canonical network <-> a NIR graph (the ``nir`` package, NIR 1.0).

The mapping, stated once (``dt`` is the time step in seconds, the case's ``duration_s / time_steps`` unless
given; NIR's neurons are continuous-time ODEs, snnbench's are their forward-Euler steps):

* ``linear`` <-> ``Affine(weight [out, in], bias)`` (``Linear(weight)`` without bias).
* ``conv2d`` <-> ``Conv2d(input_shape (H, W), weight [out, in, k, k], stride, padding, dilation 1, groups 1,
  bias)``; ``flatten`` <-> ``Flatten(input_type (C, H, W), start_dim 0, end_dim -1)`` (NIR's shapes have no
  batch axis).
* ``lif`` <-> ``LIF(tau, r, v_leak 0, v_threshold, v_reset 0)``: NIR's ``tau dv/dt = (v_leak - v) + r I``
  stepped by Euler is ``v <- (1 - dt/tau) v + (dt r / tau) I``, so ``tau = dt / (1 - beta)`` and ``r = tau / dt``
  (the input enters unscaled, as in snnTorch's ``Leaky``). A trained per-neuron decay becomes a per-neuron
  ``tau``. ``if`` <-> ``IF(r 1, v_threshold, v_reset 0)`` (``r = 1``: the discrete frameworks' reading).
* ``cuba_lif`` <-> ``CubaLIF(tau_syn = dt / (1 - alpha), tau_mem = dt / (1 - beta), r = tau_mem / dt,
  w_in = tau_syn / dt, v_leak 0, v_threshold, v_reset 0)``.
* ``li`` <-> ``LI(tau = dt / (1 - beta), r = tau / dt, v_leak 0)``.
* ``recurrent: true`` <-> a cycle: the neuron node ``layers.{i}`` feeds ``layers.{i}.recurrent``, a
  ``Linear(weight V [n, n])``, whose output feeds ``layers.{i}`` back (edges ``layers.{i} -> layers.{i}.recurrent``
  and ``layers.{i}.recurrent -> layers.{i}``): NIR's way of writing a recurrent layer, which a discrete-time
  reader runs with the recurrent input one step late (``V s_{t-1}``). Read back from that cycle, and from
  the nested form snnTorch's exporter writes (a ``NIRGraph`` node holding ``input -> lif``, ``lif -> w_rec``,
  ``w_rec -> lif``, ``lif -> output``); an ``Affine`` recurrence with a non-zero bias is refused (the spec's
  has none).
* Reset: a NIR neuron resets *to* ``v_reset`` (``zero`` here). NIR has no subtractive reset, so a
  ``subtract`` / ``subtract_decayed`` layer is written with NIR's fields and its real reset in the node's
  metadata (``snnbench``): snnbench's reader restores it; a reader that follows NIR alone runs a zero reset.
  The surrogate, ``detach_reset``, ``spike_from`` and ``T`` (training facts NIR does not model) travel the same
  way, in the graph's metadata, as JSON.
* No NIR node: ``maxpool`` (NIR 1.0 pools are ``SumPool2d`` / ``AvgPool2d``) and the parallel-in-time neurons.

A graph from elsewhere (no ``snnbench`` metadata) must be a chain ``Input -> ... -> Output`` of the nodes
above with ``v_leak = 0`` and an input scale of 1, and needs its ``dt``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SnnbenchError
from ..spec import LayerSpec, NetworkSpec, SurrogateSpec, check_weights, network_from_dict, weight_shapes

META = "snnbench"
#: NIR node types snnbench reads (anything else is refused, naming the node)
READABLE = ("Input", "Output", "Affine", "Linear", "Conv2d", "Flatten", "LIF", "IF", "LI", "CubaLIF")


def _import_nir():
    try:
        import nir
    except ImportError as exc:
        raise SnnbenchError("NIR needs the 'nir' package: pip install nir") from exc
    return nir


def _full(value: float | np.ndarray, n: int) -> np.ndarray:
    """Per-neuron float64 (time constants in float32 would not give the decay back exactly)."""
    return np.broadcast_to(np.asarray(value, np.float64), (n,)).copy()


def _tau(beta: float | np.ndarray, dt: float) -> np.ndarray:
    beta = np.asarray(beta, np.float64)
    if np.any(beta >= 1.0):
        raise SnnbenchError("a decay of 1 has no finite NIR time constant (use 'if')")
    return dt / (1.0 - beta)


def to_nir(network: NetworkSpec, weights: dict[str, np.ndarray], dt: float, metadata: dict[str, Any] | None = None):
    """``network`` with its canonical ``weights`` as a ``nir.NIRGraph`` (module docstring: the mapping)."""
    nir = _import_nir()
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(network.sample_shape)})}
    order = ["input"]
    for i, (layer, shape_in, shape_out) in enumerate(zip(network.layers, network.input_shapes(), network.shapes())):
        node = _layer_to_node(nir, i, layer, shape_in, shape_out, weights, dt)
        facts = {"layer": i, "bias": layer.bias} if layer.is_weight else {"layer": i}
        if layer.spiking:
            facts.update(reset=layer.reset, detach_reset=layer.detach_reset, spike_from=layer.spike_from)
        if layer.recurrent:
            facts["recurrent"] = True
        node.metadata = {META: json.dumps(facts)}
        nodes[f"layers.{i}"] = node
        order.append(f"layers.{i}")
    nodes["output"] = nir.Output(output_type={"output": np.array(network.shapes()[-1])})
    order.append("output")
    edges = list(zip(order[:-1], order[1:]))
    for i, layer in enumerate(network.layers):
        if layer.recurrent:  # the cycle: the layer's spikes back into its own input through V
            rec = f"layers.{i}.recurrent"
            nodes[rec] = nir.Linear(weight=np.asarray(weights[rec], np.float32))
            nodes[rec].metadata = {META: json.dumps({"layer": i, "recurrent": True})}
            edges += [(f"layers.{i}", rec), (rec, f"layers.{i}")]
    meta = {"dt": dt, "network": dataclasses.asdict(network), **(metadata or {})}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={META: json.dumps(meta)}, type_check=False)


def _layer_to_node(nir, i: int, layer: LayerSpec, shape_in, shape_out, weights, dt: float):
    n = int(np.prod(shape_out))
    beta = weights.get(f"layers.{i}.beta", layer.beta) if layer.learn_beta else layer.beta
    if layer.type == "linear":
        w = weights[f"layers.{i}.weight"]
        return nir.Affine(weight=w, bias=weights[f"layers.{i}.bias"]) if layer.bias else nir.Linear(weight=w)
    if layer.type == "conv2d":
        w = weights[f"layers.{i}.weight"]
        bias = weights[f"layers.{i}.bias"] if layer.bias else np.zeros(w.shape[0], np.float32)
        return nir.Conv2d(input_shape=tuple(shape_in[1:]), weight=w, stride=int(layer.stride),
                          padding=int(layer.padding), dilation=1, groups=1, bias=bias)
    if layer.type == "flatten":
        return nir.Flatten(input_type={"input": np.array(shape_in)}, start_dim=0, end_dim=-1)
    if layer.type in ("lif", "li", "cuba_lif"):
        tau = _full(_tau(np.reshape(beta, -1), dt), n)
        r = tau / dt
        zero = np.zeros(n)
        if layer.type == "li":
            return nir.LI(tau=tau, r=r, v_leak=zero)
        th = _full(layer.threshold, n)
        if layer.type == "lif":
            return nir.LIF(tau=tau, r=r, v_leak=zero, v_threshold=th, v_reset=zero)
        tau_syn = _full(_tau(layer.alpha, dt), n)
        return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau, r=r, v_leak=zero, v_threshold=th, v_reset=zero,
                           w_in=tau_syn / dt)
    if layer.type == "if":
        return nir.IF(r=np.ones(n), v_threshold=_full(layer.threshold, n), v_reset=np.zeros(n))
    reason = ("NIR 1.0 has no max pooling (its pools are SumPool2d and AvgPool2d)" if layer.type == "maxpool"
              else "NIR has no node for this neuron")
    raise SnnbenchError(f"layer {i} ({layer.type}): {reason}")


# ------------------------------------------------------------------------------------------------ reading


def declared_bytes(path: Path) -> int | None:
    """The bytes a NIR file's tensors take once read (what its HDF5 datasets declare, however small the file
    is: a compressed dataset of fill values is a few bytes on disk); None if it is not HDF5."""
    import h5py

    total = 0

    def visit(_name, obj) -> None:
        nonlocal total
        if isinstance(obj, h5py.Dataset):
            total += int(obj.size or 0) * max(int(obj.dtype.itemsize), 1)

    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
    except Exception:  # not HDF5, or unreadable: nir.read says so below
        return None
    return total


def read(path: str | Path):
    """A NIR file as a ``nir.NIRGraph``; anything that is not one is one clear error, and so is one that
    declares more tensor data than this machine has memory for (checked before anything is read)."""
    from ..limits import available_memory_bytes, fmt_bytes

    nir = _import_nir()
    path = Path(path)
    if not path.is_file():
        raise SnnbenchError(f"{path}: no such file")
    need, available = declared_bytes(path), available_memory_bytes()
    if need is not None and available is not None and need > available:
        raise SnnbenchError(f"{path} declares {fmt_bytes(need)} of tensors ({fmt_bytes(path.stat().st_size)} on disk), "
                            f"more than the {fmt_bytes(available)} this machine has available; it is not read")
    try:
        return nir.read(str(path), type_check=False)
    except Exception as exc:  # h5py's OSError for a non-HDF5 file, KeyError for a foreign HDF5 file, ...
        raise SnnbenchError(f"{path}: not a NIR graph ({type(exc).__name__}: {str(exc)[:120]})") from None


def write(path: str | Path, graph) -> None:
    _import_nir().write(str(path), graph)


SPIKING_NODES = ("LIF", "CubaLIF", "IF")


def _nested_recurrence(name: str, sub) -> tuple[Any, Any] | None:
    """``(neuron node, recurrent weight node)`` of a nested ``NIRGraph`` that is one recurrent layer, as
    snnTorch's exporter writes it (``input -> N``, ``N -> W``, ``W -> N``, ``N -> output``); None otherwise."""
    kinds = {k: type(v).__name__ for k, v in sub.nodes.items()}
    neurons = [k for k, t in kinds.items() if t in SPIKING_NODES]
    dense = [k for k, t in kinds.items() if t in ("Linear", "Affine")]
    if len(neurons) != 1 or len(dense) != 1 or len(kinds) != 4:
        return None
    n, w = neurons[0], dense[0]
    if not {(n, w), (w, n)} <= set(map(tuple, sub.edges)):
        return None
    return sub.nodes[n], sub.nodes[w]


def recurrences(graph) -> dict[str, Any]:
    """Neuron node name -> its recurrent weight node, for every recurrent layer of the graph: a ``Linear`` /
    ``Affine`` node whose only input and only output is one spiking node (the cycle), or a nested ``NIRGraph``
    node holding such a cycle (then keyed by the nested graph's name)."""
    nodes, edges = graph.nodes, [tuple(e) for e in graph.edges]
    found: dict[str, Any] = {}
    for name, node in nodes.items():
        kind = type(node).__name__
        if kind == "NIRGraph" and (pair := _nested_recurrence(name, node)) is not None:
            found[name] = pair[1]
        if kind not in ("Linear", "Affine"):
            continue
        ins, outs = [a for a, b in edges if b == name], [b for a, b in edges if a == name]
        if len(ins) == 1 and ins == outs and type(nodes.get(ins[0])).__name__ in SPIKING_NODES:
            found[ins[0]] = name
    return found


def _without_recurrence(graph):
    """The graph as a chain: each recurrent weight node and its two cycle edges left out, a nested recurrent
    layer replaced by its neuron node (the weights are read by :func:`recurrences`)."""
    import copy

    rec = recurrences(graph)
    cycle_nodes = {w for w in rec.values() if isinstance(w, str)}
    nodes = {}
    for name, node in graph.nodes.items():
        if name in cycle_nodes:
            continue
        pair = _nested_recurrence(name, node) if type(node).__name__ == "NIRGraph" else None
        nodes[name] = pair[0] if pair else node
    edges = [e for e in graph.edges if e[0] not in cycle_nodes and e[1] not in cycle_nodes]
    flat = copy.copy(graph)
    flat.nodes, flat.edges = nodes, edges
    return flat


def chain(graph) -> list[str]:
    """The graph's nodes in order from its Input to its Output; a graph that is not one chain is refused
    (recurrent layers, :func:`recurrences`, are read as their neuron node)."""
    graph = _without_recurrence(graph)
    nodes, edges = graph.nodes, list(graph.edges)
    for a, b in edges:
        for end in (a, b):
            if end not in nodes:
                raise SnnbenchError(f"NIR edge {a!r} -> {b!r}: {end!r} is not a node of the graph")
    for name, node in nodes.items():
        kind = type(node).__name__
        if kind not in READABLE:
            what = "a subgraph (recurrence)" if kind == "NIRGraph" else kind
            raise SnnbenchError(f"NIR node {name!r} ({what}): snnbench's network spec cannot express it "
                                f"(it reads {', '.join(READABLE)})")
    inputs = [k for k, v in nodes.items() if type(v).__name__ == "Input"]
    if len(inputs) != 1:
        raise SnnbenchError(f"the NIR graph has {len(inputs)} Input nodes; snnbench reads a single chain")
    successors: dict[str, list[str]] = {}
    for a, b in edges:
        successors.setdefault(a, []).append(b)
    order, seen = [inputs[0]], {inputs[0]}
    while type(nodes[order[-1]]).__name__ != "Output":
        nxt = successors.get(order[-1], [])
        if len(nxt) != 1 or nxt[0] in seen:
            raise SnnbenchError(f"NIR node {order[-1]!r} has {len(nxt)} successors (or a cycle): snnbench reads "
                                "chains only (a recurrent layer's own cycle through one Linear aside)")
        order.append(nxt[0])
        seen.add(nxt[0])
    if len(order) != len(nodes):
        raise SnnbenchError(f"the NIR graph has nodes off its Input -> Output chain: "
                            f"{sorted(set(nodes) - seen)[:3]}")
    return order


def _meta(node_or_graph) -> dict[str, Any]:
    raw = (getattr(node_or_graph, "metadata", None) or {}).get(META)
    if raw is None:
        return {}
    try:
        return json.loads(raw if isinstance(raw, str) else bytes(raw).decode())
    except (ValueError, TypeError):
        return {}


def from_nir(graph, dt: float | None = None, fold_input_scale: bool = False
             ) -> tuple[NetworkSpec, dict[str, np.ndarray], float]:
    """A NIR graph as ``(network, canonical weights, dt)``: the inverse of :func:`to_nir` on its own graphs,
    and the subset snnbench's spec can express of anyone else's. ``dt`` overrides the graph's.
    ``fold_input_scale``: a neuron node whose input scale ``r dt / tau`` is not 1 is read as its weight layer
    times that scale (the same computation), instead of being refused."""
    order = chain(graph)
    meta = _meta(graph)
    dt = dt if dt is not None else meta.get("dt")
    if dt is None:
        raise SnnbenchError("the NIR graph does not say its time step: pass --dt SECONDS")
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not math.isfinite(dt) or not dt > 0:
        raise SnnbenchError(f"the NIR graph's time step {dt!r} is not a finite number of seconds > 0: pass --dt SECONDS")
    rec = recurrences(graph)
    flat = _without_recurrence(graph)
    for name in order:
        check_finite(name, flat.nodes[name])
    shape = tuple(int(v) for v in np.reshape(list(flat.nodes[order[0]].input_type.values())[0], -1))
    layers: list[dict[str, Any]] = []
    weights: dict[str, np.ndarray] = {}
    for name in order[1:-1]:
        layer, w = _node_to_layer(name, flat.nodes[name], len(layers), float(dt), fold_input_scale)
        if name in rec:
            w_node = graph.nodes[rec[name]] if isinstance(rec[name], str) else rec[name]
            layer["recurrent"] = True
            w[f"layers.{len(layers)}.recurrent"] = _recurrent_weight(name, w_node)
            if layer.get("_input_scale", 1.0) != 1.0:  # the node scales its recurrent input too
                w[f"layers.{len(layers)}.recurrent"] *= np.float32(layer["_input_scale"])
        scale = layer.pop("_input_scale", 1.0)
        if scale != 1.0:
            j = max(k for k, la in enumerate(layers) if la["type"] in ("linear", "conv2d"))
            for key in (f"layers.{j}.weight", f"layers.{j}.bias"):
                if key in weights:
                    weights[key] = (weights[key] * scale).astype(np.float32)
        layers.append(layer)
        weights.update(w)
    network = _network(layers, shape, meta, weights)
    expected = weight_shapes(network)
    for key, value in weights.items():
        if key in expected and tuple(value.shape) != tuple(expected[key]):
            raise SnnbenchError(f"NIR node for {key}: shape {tuple(value.shape)}, the chain needs {tuple(expected[key])}")
    try:
        check_weights(network, weights)
    except ValueError as exc:
        raise SnnbenchError(f"the NIR graph's parameters do not make a snnbench network: {exc}") from None
    return network, weights, float(dt)


def _recurrent_weight(name: str, node) -> np.ndarray:
    """A recurrence's ``V [n, n]`` from its ``Linear`` / ``Affine`` node (a bias other than 0 is refused)."""
    check_finite(f"{name} (recurrent weight)", node)
    bias = getattr(node, "bias", None)
    if bias is not None and np.any(np.asarray(bias) != 0):
        raise SnnbenchError(f"NIR node {name!r}: its recurrent Affine has a bias; snnbench's recurrence has none")
    return np.asarray(node.weight, np.float32)


def check_finite(name: str, node) -> None:
    """Every number a node holds (weights, time constants, thresholds) is finite: a NaN or an infinity would
    run, and train, to NaN."""
    for field, value in vars(node).items():
        if isinstance(value, (list, tuple, np.ndarray, float, int)) and not isinstance(value, bool):
            try:
                array = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                continue
            if not np.all(np.isfinite(array)):
                raise SnnbenchError(f"NIR node {name!r}: {field} holds values that are not finite (NaN or inf)")


def _network(layers: list[dict[str, Any]], shape: tuple[int, ...], meta: dict[str, Any],
             weights: dict[str, np.ndarray]) -> NetworkSpec:
    """The layer specs read from the nodes, completed by the graph's own metadata where snnbench wrote it;
    ``weights`` gains a trained decay the metadata declares but the nodes hold as one value."""
    known = meta.get("network")
    base = network_from_dict(known) if known else None
    specs = []
    for i, fields in enumerate(layers):
        spec_fields = {k: v for k, v in fields.items() if not k.startswith("_")}
        if base is not None and i < len(base.layers) and base.layers[i].type == fields["type"]:
            # what NIR cannot hold comes from the metadata; what it holds (decays, thresholds) is NIR's,
            # read back exactly when it is the metadata's value within float32 rounding
            old = base.layers[i]
            for k in ("beta", "alpha", "threshold"):
                if k in spec_fields and abs(spec_fields[k] - getattr(old, k)) <= 1e-6 * max(1.0, abs(getattr(old, k))):
                    spec_fields[k] = getattr(old, k)
            spec_fields = {**dataclasses.asdict(old), **spec_fields}
            if old.learn_beta:  # the spec keeps the initial decay; the trained ones are weights
                key = f"layers.{i}.beta"
                if key not in weights:
                    weights[key] = np.full(_flat_size(base, i), spec_fields["beta"], np.float32)
                spec_fields.update(beta=old.beta, learn_beta=True)
        specs.append(LayerSpec(**spec_fields))
    image = len(shape) == 3
    return NetworkSpec(inputs=int(np.prod(shape)), layers=tuple(specs),
                       surrogate=base.surrogate if base else SurrogateSpec(),
                       time_steps=base.time_steps if base else 0, input_shape=tuple(shape) if image else (),
                       population=base.population if base else 1)  # the readout's score: snnbench's metadata


def _flat_size(network: NetworkSpec, i: int) -> tuple[int]:
    """Layer ``i``'s activity as one flat axis (the shape of a trained per-neuron decay)."""
    return (int(np.prod(network.shapes()[i])),)


def _uniform(name: str, what: str, values: np.ndarray) -> float:
    values = np.asarray(values, np.float64).reshape(-1)
    if values.size and not np.allclose(values, values[0], rtol=1e-6, atol=0):
        raise SnnbenchError(f"NIR node {name!r}: {what} differs between neurons; snnbench's spec holds one value")
    return float(values[0])


def _beta(name: str, tau: np.ndarray, r: np.ndarray, dt: float, fold: bool = False) -> tuple[np.ndarray, float]:
    """Per-neuron decay and the node's input scale (1 unless ``fold``: non-unit scales are refused)."""
    tau = np.asarray(tau, np.float64).reshape(-1)
    scale = np.asarray(r, np.float64).reshape(-1) * dt / tau
    if fold and np.allclose(scale, scale[0], rtol=1e-6):
        return 1.0 - dt / tau, float(scale[0])
    if not np.allclose(scale, 1.0, rtol=1e-5):
        raise SnnbenchError(f"NIR node {name!r}: input scale r*dt/tau = {float(np.mean(scale)):.6g}, snnbench's "
                            "neurons add their input unscaled (1); fold it into the weights or pass the right --dt")
    return 1.0 - dt / tau, 1.0


def _node_to_layer(name: str, node, index: int, dt: float, fold: bool = False
                   ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    kind = type(node).__name__
    meta = _meta(node)
    pre = f"layers.{index}"
    if kind in ("Affine", "Linear"):
        w = np.asarray(node.weight, np.float32)
        out = {f"{pre}.weight": w}
        if kind == "Affine":
            out[f"{pre}.bias"] = np.asarray(node.bias, np.float32)
        return {"type": "linear", "out": int(w.shape[0]), "bias": kind == "Affine"}, out
    if kind == "Conv2d":
        w = np.asarray(node.weight, np.float32)
        stride, padding = np.atleast_1d(node.stride), np.atleast_1d(node.padding)
        if (w.ndim != 4 or w.shape[2] != w.shape[3] or len(set(stride.tolist())) != 1
                or isinstance(node.padding, str) or len(set(padding.tolist())) != 1
                or np.any(np.atleast_1d(node.dilation) != 1) or node.groups != 1):
            raise SnnbenchError(f"NIR node {name!r}: snnbench's conv2d is square, with equal strides and paddings, "
                                "dilation 1 and one group")
        bias = bool(meta.get("bias", True))
        out = {f"{pre}.weight": w, **({f"{pre}.bias": np.asarray(node.bias, np.float32)} if bias else {})}
        return ({"type": "conv2d", "out": int(w.shape[0]), "kernel": int(w.shape[2]), "stride": int(stride[0]),
                 "padding": int(padding[0]), "bias": bias}, out)
    if kind == "Flatten":
        return {"type": "flatten"}, {}
    if kind == "IF":
        if not np.allclose(node.r, 1.0):
            raise SnnbenchError(f"NIR node {name!r}: IF with r != 1 is not snnbench's 'if'")
        return {"type": "if", "threshold": _uniform(name, "v_threshold", node.v_threshold), **_reset(name, node, meta)}, {}
    if kind in ("LIF", "LI", "CubaLIF"):
        return _leaky_layer(name, node, kind, meta, pre, dt, fold)
    raise SnnbenchError(f"NIR node {name!r} ({kind}): snnbench's network spec cannot express it")


def _leaky_layer(name: str, node, kind: str, meta: dict[str, Any], pre: str, dt: float, fold: bool
                 ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A LIF, LI or CubaLIF node as a layer: decay from ``tau`` and ``dt``, threshold, reset, synaptic decay."""
    if not np.allclose(node.v_leak, 0.0):
        raise SnnbenchError(f"NIR node {name!r}: v_leak != 0 (snnbench's neurons leak to 0)")
    beta, scale = _beta(name, node.tau_mem if kind == "CubaLIF" else node.tau, node.r, dt, fold)
    fields: dict[str, Any] = {"type": {"LIF": "lif", "LI": "li", "CubaLIF": "cuba_lif"}[kind]}
    if scale != 1.0:
        fields["_input_scale"] = scale
    extra = {}
    if np.allclose(beta, beta[0], rtol=1e-6, atol=0):
        fields["beta"] = float(beta[0])
    else:  # per-neuron decays: snnbench holds them as a trained decay
        fields.update(beta=float(np.mean(beta)), learn_beta=True)
        extra[f"{pre}.beta"] = beta.astype(np.float32)
    if kind != "LI":
        fields.update(threshold=_uniform(name, "v_threshold", node.v_threshold), **_reset(name, node, meta))
    if kind == "CubaLIF":
        syn_scale = np.asarray(node.w_in, np.float64) * dt / np.asarray(node.tau_syn, np.float64)
        if not np.allclose(syn_scale, 1.0, rtol=1e-5):
            raise SnnbenchError(f"NIR node {name!r}: synaptic input scale w_in*dt/tau_syn != 1")
        fields["alpha"] = _uniform(name, "tau_syn", 1.0 - dt / np.asarray(node.tau_syn, np.float64))
    return fields, extra


def _reset(name: str, node, meta: dict[str, Any]) -> dict[str, Any]:
    """A spiking node's reset: the metadata's (NIR has no subtractive reset), else NIR's reset-to-v_reset."""
    if meta.get("reset"):
        return {k: meta[k] for k in ("reset", "detach_reset", "spike_from") if k in meta}
    v_reset = getattr(node, "v_reset", None)
    if v_reset is not None and not np.allclose(v_reset, 0.0):
        raise SnnbenchError(f"NIR node {name!r}: v_reset != 0 (snnbench's hard reset is to 0)")
    return {"reset": "zero"}
