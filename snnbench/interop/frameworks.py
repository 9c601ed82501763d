"""Other frameworks' own NIR readers and writers, called as their documentation shows, for the NIR check
(:mod:`.check`). Nothing here adapts a framework to snnbench's semantics: the point is to measure what each
framework's NIR support does with the same graph.

``read(graph, dt)`` builds the framework's model from a NIR graph with its own importer and returns an
:class:`Imported`: a function running it on time-major input ``[T, B, C]`` (NumPy, float32) to its output
``[T, B, O]``, and what the framework made of each neuron node (its *reading*: decay per step, input scale,
threshold, reset; ``dropped`` for a node it built nothing for), read from the built modules.

``write(network, weights, dt)`` builds the framework's own model of the network in its idiom, with the
canonical weights, and returns the framework exporter's NIR graph and the ``dt`` that exporter assumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..runners.base import guarded_import, package_present
from ..spec import NetworkSpec


@dataclass
class Imported:
    run: Callable[[np.ndarray], np.ndarray]  # [T, B, C] -> [T, B, O]
    #: per NIR neuron node, in graph order: {node, kind, beta, input_scale, threshold, reset} or {node, dropped}
    reading: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class NirFramework:
    name: str
    package: str
    read: Callable[[Any, float], Imported] | None
    write: Callable[[NetworkSpec, dict[str, np.ndarray], float], tuple[Any, float]] | None
    reader_api: str
    writer_api: str

    def available(self):
        return package_present(self.package)


def _torch_stepper(model) -> Callable[[np.ndarray], np.ndarray]:
    """Step a ``forward(x_t, state) -> (out, state)`` module (nirtorch's executors) through time."""
    import torch

    def run(x: np.ndarray) -> np.ndarray:
        state, outs = None, []
        with torch.no_grad():
            for x_t in torch.from_numpy(x):
                out, state = model(x_t, state)
                outs.append(out.detach().float().numpy())
        return np.stack(outs)

    return run


def _torch_linear(cls, i: int, n_in: int, layer, weights: dict[str, np.ndarray], scale: float = 1.0):
    """A torch ``Linear``-like ``cls(n_in, out, bias=)`` holding layer ``i``'s canonical weights times ``scale``."""
    import torch

    m = cls(n_in, layer.out, bias=layer.bias)
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(weights[f"layers.{i}.weight"] * scale))
        if layer.bias:
            m.bias.copy_(torch.from_numpy(weights[f"layers.{i}.bias"] * scale))
    return m


def _no_recurrence(network: NetworkSpec, framework: str) -> None:
    """Refuse a recurrent network where no recurrent idiom is written here for the framework's writer
    (building its feed-forward neuron instead would silently drop the recurrence)."""
    rec = [i for i, layer in enumerate(network.layers) if layer.recurrent]
    if rec:
        raise NotImplementedError(f"no {framework} idiom written here for a recurrent layer (layer {rec[0]})")


def _mean(value) -> float:
    return float(np.mean(np.asarray(value.detach() if hasattr(value, "detach") else value, np.float64)))


def _neuron_nodes(graph) -> list[str]:
    return [k for k, v in graph.nodes.items() if type(v).__name__ in ("LIF", "LI", "IF", "CubaLIF")]


def _modules_by_node(model) -> dict[str, Any]:
    """nirtorch names a node's module after the node, dots as underscores."""
    return {name: m for name, m in model.named_children()}


# ------------------------------------------------------------------------------------------------ snnTorch


def _snntorch_read(graph, dt: float) -> Imported:
    from snntorch.import_nir import import_from_nir

    model = import_from_nir(graph)
    mods = _modules_by_node(model)
    reading = []
    for node in _neuron_nodes(graph):
        m = mods.get(node.replace(".", "_"))
        if m is None:
            reading.append({"node": node, "dropped": True})
            continue
        reset = {0: "subtract", 1: "zero", 2: "none"}.get(int(m.reset_mechanism_val), "?")
        reading.append({"node": node, "kind": type(m).__name__, "beta": _mean(m.beta), "input_scale": 1.0,
                        "threshold": _mean(m.threshold), "reset": reset})
    return Imported(_torch_stepper(model), reading)


def _snntorch_write(network: NetworkSpec, weights: dict[str, np.ndarray], dt: float) -> tuple[Any, float]:
    import snntorch as snn
    import torch
    from snntorch.export_nir import export_to_nir

    mods = []
    for i, (layer, shape_in) in enumerate(zip(network.layers, network.input_shapes())):
        if layer.type == "linear":
            m = _torch_linear(torch.nn.Linear, i, shape_in[0], layer, weights)
        elif layer.type == "lif" and layer.recurrent:  # RLeaky, all-to-all: its nn.Linear(n, n) holds V, bias 0
            m = snn.RLeaky(beta=layer.beta, threshold=layer.threshold, reset_mechanism=layer.reset, init_hidden=True,
                           all_to_all=True, linear_features=shape_in[0])
            with torch.no_grad():
                m.recurrent.weight.copy_(torch.from_numpy(weights[f"layers.{i}.recurrent"]))
                m.recurrent.bias.zero_()
        elif layer.type == "lif":
            m = snn.Leaky(beta=layer.beta, threshold=layer.threshold, reset_mechanism=layer.reset, init_hidden=True)
        elif layer.type == "li":
            m = snn.Leaky(beta=layer.beta, reset_mechanism="none", init_hidden=True, output=True)
        else:
            raise NotImplementedError(f"no snnTorch idiom written here for {layer.type}")
        mods.append(m)
    net = torch.nn.Sequential(*mods)
    # snnTorch's NIR code fixes dt = 1e-4 s; ignore_dims drops the sample's batch axis from the NIR types
    return export_to_nir(net, torch.zeros(1, network.inputs), ignore_dims=[0]), 1e-4


# ------------------------------------------------------------------------------------------------ Norse


def _norse_read(graph, dt: float) -> Imported:
    norse = guarded_import("norse.torch")
    model = norse.from_nir(graph, dt=dt, ignore_warnings=True)
    mods = _modules_by_node(model)
    reading = []
    for node in _neuron_nodes(graph):
        m = mods.get(node.replace(".", "_"))
        if m is None:
            reading.append({"node": node, "dropped": True})
            continue
        p, step = m.p, float(getattr(m, "dt", dt))
        rate = float(np.mean(np.asarray(p.tau_mem_inv))) * step
        reading.append({"node": node, "kind": type(m).__name__, "beta": 1.0 - rate, "input_scale": rate,
                        "threshold": float(np.mean(np.asarray(getattr(p, "v_th", np.inf)))),
                        "reset": "zero" if "value" in getattr(getattr(p, "reset_method", None), "__name__", "value")
                        else "subtract"})
    return Imported(_torch_stepper(model), reading)


def _norse_write(network: NetworkSpec, weights: dict[str, np.ndarray], dt: float) -> tuple[Any, float]:
    _no_recurrence(network, "Norse")
    import torch

    norse = guarded_import("norse.torch")
    from norse.torch.utils.export_nir import to_nir

    mods = []
    for i, (layer, shape_in) in enumerate(zip(network.layers, network.input_shapes())):
        if layer.type == "linear":
            # Norse scales a neuron's input by dt * tau_mem_inv = 1 - beta: the weights carry 1 / (1 - beta)
            nxt = network.layers[i + 1]
            scale = 1.0 / (1.0 - nxt.beta)
            m = _torch_linear(torch.nn.Linear, i, shape_in[0], layer, weights, scale)
        elif layer.type == "lif":
            m = norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=torch.tensor((1 - layer.beta) / dt),
                                                        v_th=torch.tensor(layer.threshold)), dt=dt)
        elif layer.type == "li":
            m = norse.LIBoxCell(norse.LIBoxParameters(tau_mem_inv=torch.tensor((1 - layer.beta) / dt)), dt=dt)
        else:
            raise NotImplementedError(f"no Norse idiom written here for {layer.type}")
        mods.append(m)
    return to_nir(norse.SequentialState(*mods), torch.zeros(1, network.inputs), dt=dt), dt


# ------------------------------------------------------------------------------------------------ Spyx


def _spyx_read(graph, dt: float) -> Imported:
    import jax.numpy as jnp

    spyx_nir = guarded_import("spyx.nir")
    spyx_nn = guarded_import("spyx.nn")

    def run(x: np.ndarray) -> np.ndarray:
        _, out = spyx_nir.from_nir(graph, jnp.asarray(x), dt=dt)
        return np.asarray(out, np.float32)

    n_in = int(np.prod(graph.nodes[_first_input(graph)].output_type["output"]))
    model, _ = spyx_nir.from_nir(graph, jnp.zeros((1, 1, n_in)), dt=dt)
    neurons = [m for m in model.layers if isinstance(m, spyx_nn.LIF)]
    reading = [{"node": node, "kind": "LIF", "beta": _mean(np.clip(np.asarray(m.beta[...]), 0, 1)), "input_scale": 1.0,
                "threshold": _mean(m.threshold), "reset": "subtract", "spike_from": "previous"}
               for node, m in zip([n for n in _neuron_nodes(graph) if type(graph.nodes[n]).__name__ == "LIF"], neurons)]
    return Imported(run, reading)


def _first_input(graph) -> str:
    return next(k for k, v in graph.nodes.items() if type(v).__name__ == "Input")


def _spyx_write(network: NetworkSpec, weights: dict[str, np.ndarray], dt: float) -> tuple[Any, float]:
    _no_recurrence(network, "Spyx")
    import jax.numpy as jnp
    from flax import nnx

    spyx_nn = guarded_import("spyx.nn")
    spyx_nir = guarded_import("spyx.nir")
    rngs, mods = nnx.Rngs(0), []
    for i, (layer, shape_in) in enumerate(zip(network.layers, network.input_shapes())):
        if layer.type == "linear":
            m = nnx.Linear(shape_in[0], layer.out, use_bias=layer.bias, rngs=rngs)
            m.kernel[...] = jnp.asarray(weights[f"layers.{i}.weight"].T)
            if layer.bias:
                m.bias[...] = jnp.asarray(weights[f"layers.{i}.bias"])
        elif layer.type == "lif":
            m = spyx_nn.LIF((shape_in[0],), beta=layer.beta, threshold=layer.threshold, rngs=rngs)
        elif layer.type == "li":
            m = spyx_nn.LI((shape_in[0],), beta=layer.beta, rngs=rngs)
        else:
            raise NotImplementedError(f"no Spyx idiom written here for {layer.type}")
        mods.append(m)
    graph = spyx_nir.to_nir(spyx_nn.Sequential(*mods), {"input": np.array([network.inputs])},
                            {"output": np.array([network.outputs])}, dt=dt)
    return graph, dt


# ------------------------------------------------------------------------------------------------ Sinabs


def _sinabs_read(graph, dt: float) -> Imported:
    import torch

    sinabs_nir = guarded_import("sinabs.nir")
    sinabs = guarded_import("sinabs")
    holder: dict[str, Any] = {}

    def run(x: np.ndarray) -> np.ndarray:
        T, B = x.shape[:2]
        if holder.get("batch") != B:
            holder.update(batch=B, model=sinabs_nir.from_nir(graph, batch_size=B))
        model = holder["model"]
        sinabs.reset_states(model)
        with torch.no_grad():  # Sinabs' squeezed layers take [B * T, C], batch-major
            flat = torch.from_numpy(np.ascontiguousarray(np.swapaxes(x, 0, 1))).reshape(B * T, -1)
            out, *_ = _first(model(flat))
        return np.swapaxes(out.reshape(B, T, -1).numpy(), 0, 1)

    model = sinabs_nir.from_nir(graph, batch_size=1)
    reading = []
    for node in _neuron_nodes(graph):
        m = _modules_by_node(model).get(node.replace(".", "_"))
        if m is None:
            reading.append({"node": node, "dropped": True})
            continue
        alpha = float(torch.exp(-1.0 / torch.as_tensor(m.tau_mem).detach()).mean())  # Sinabs: tau in time steps
        reading.append({"node": node, "kind": type(m).__name__, "beta": alpha,
                        "input_scale": 1.0 - alpha if getattr(m, "norm_input", False) else 1.0,
                        "threshold": float(torch.as_tensor(m.spike_threshold).detach().mean()),
                        "reset": "subtract_decayed" if "Subtract" in type(m.reset_fn).__name__ else "zero"})
    return Imported(run, reading)


def _first(out):
    return out if isinstance(out, tuple) else (out,)


def _sinabs_write(network: NetworkSpec, weights: dict[str, np.ndarray], dt: float) -> tuple[Any, float]:
    _no_recurrence(network, "Sinabs")
    import torch

    sl = guarded_import("sinabs.layers")
    sinabs_nir = guarded_import("sinabs.nir")
    mods = []
    for i, (layer, shape_in) in enumerate(zip(network.layers, network.input_shapes())):
        tau = -1.0 / np.log(layer.beta) if layer.is_neuron else None
        if layer.type == "linear":
            m = _torch_linear(torch.nn.Linear, i, shape_in[0], layer, weights)
        elif layer.type == "lif":
            m = sl.LIFSqueeze(tau_mem=float(tau), spike_threshold=layer.threshold, norm_input=False, batch_size=1)
        elif layer.type == "li":
            m = sl.ExpLeakSqueeze(tau_mem=float(tau), norm_input=False, batch_size=1)
        else:
            raise NotImplementedError(f"no Sinabs idiom written here for {layer.type}")
        mods.append(m)
    return sinabs_nir.to_nir(torch.nn.Sequential(*mods), torch.zeros(1, network.inputs)), 1.0  # Sinabs: tau in steps


# ------------------------------------------------------------------------------------------------ Rockpool


def _rockpool_read(graph, dt: float) -> Imported:
    nir_mod = guarded_import("rockpool.nn.modules.torch.nir")
    model = nir_mod.from_nir(graph)
    return Imported(_torch_stepper(model), [])


def _rockpool_write(network: NetworkSpec, weights: dict[str, np.ndarray], dt: float) -> tuple[Any, float]:
    _no_recurrence(network, "Rockpool")
    import torch

    modules = guarded_import("rockpool.nn.modules")
    combinators = guarded_import("rockpool.nn.combinators")
    nir_mod = guarded_import("rockpool.nn.modules.torch.nir")
    mods = []
    for i, (layer, shape_in) in enumerate(zip(network.layers, network.input_shapes())):
        if layer.type == "linear":
            mods.append(modules.LinearTorch((shape_in[0], layer.out), has_bias=layer.bias,
                                            weight=torch.from_numpy(weights[f"layers.{i}.weight"].T.copy()),
                                            **({"bias": torch.from_numpy(weights[f"layers.{i}.bias"])}
                                               if layer.bias else {})))
        elif layer.type == "lif":
            mods.append(modules.LIFNeuronTorch(shape_in[0], tau_mem=-dt / np.log(layer.beta), threshold=layer.threshold,
                                               dt=dt))
        elif layer.type == "li":
            mods.append(modules.ExpSynTorch(shape_in[0], tau=-dt / np.log(layer.beta), dt=dt))
        else:
            raise NotImplementedError(f"no Rockpool idiom written here for {layer.type}")
    return nir_mod.to_nir(combinators.Sequential(*mods)), dt


# ------------------------------------------------------------------------------------------------ SpikingJelly


def _spikingjelly_read(graph, dt: float) -> Imported:
    sj = guarded_import("spikingjelly.activation_based.nir_exchange.from_nir")
    neuron = guarded_import("spikingjelly.activation_based.neuron")
    model = sj.import_from_nir(graph, dt=dt)
    reading = []
    lifs = [m for m in model.modules() if isinstance(m, neuron.LIFNode)]
    for node, m in zip([n for n in _neuron_nodes(graph) if type(graph.nodes[n]).__name__ == "LIF"], lifs):
        tau = float(m.tau)
        reading.append({"node": node, "kind": "LIFNode", "beta": 1.0 - 1.0 / tau,
                        "input_scale": 1.0 / tau if m.decay_input else 1.0, "threshold": float(m.v_threshold),
                        "reset": "zero" if m.v_reset is not None else "subtract_decayed"})
    return Imported(_torch_stepper(model), reading)


def _spikingjelly_write(network: NetworkSpec, weights: dict[str, np.ndarray], dt: float) -> tuple[Any, float]:
    _no_recurrence(network, "SpikingJelly")
    import torch

    layer_mod = guarded_import("spikingjelly.activation_based.layer")
    neuron = guarded_import("spikingjelly.activation_based.neuron")
    to_nir = guarded_import("spikingjelly.activation_based.nir_exchange.to_nir")
    mods = []
    for i, (layer, shape_in) in enumerate(zip(network.layers, network.input_shapes())):
        if layer.type == "linear":
            m = _torch_linear(layer_mod.Linear, i, shape_in[0], layer, weights)
        elif layer.type == "lif":
            m = neuron.LIFNode(tau=1.0 / (1.0 - layer.beta), decay_input=False, v_threshold=layer.threshold, v_reset=0.0)
        elif layer.type == "li":  # SpikingJelly's leaky-integrator readout (it scales its input by 1 / tau)
            m = neuron.NonSpikingLIFNode(tau=1.0 / (1.0 - layer.beta))
        else:
            raise NotImplementedError(f"no SpikingJelly idiom written here for {layer.type}")
        mods.append(m)
    return to_nir.export_to_nir(torch.nn.Sequential(*mods), torch.zeros(1, network.inputs), dt=dt), dt


SNNTORCH = NirFramework("snntorch", "snntorch", _snntorch_read, _snntorch_write,
                        "snntorch.import_nir.import_from_nir(graph)", "snntorch.export_nir.export_to_nir(net, sample)")
NORSE = NirFramework("norse", "norse", _norse_read, _norse_write,
                     "norse.torch.from_nir(graph, dt=dt)", "norse.torch.utils.export_nir.to_nir(model, sample, dt=dt)")
SPYX = NirFramework("spyx", "spyx", _spyx_read, _spyx_write,
                    "spyx.nir.from_nir(graph, x, dt=dt)", "spyx.nir.to_nir(model, input_type, output_type, dt=dt)")
SINABS = NirFramework("sinabs", "sinabs", _sinabs_read, _sinabs_write,
                      "sinabs.nir.from_nir(graph, batch_size=B)", "sinabs.nir.to_nir(model, sample)")
ROCKPOOL = NirFramework("rockpool", "rockpool", _rockpool_read, _rockpool_write,
                        "rockpool.nn.modules.torch.nir.from_nir(graph)", "rockpool.nn.modules.torch.nir.to_nir(module)")
SPIKINGJELLY = NirFramework("spikingjelly", "spikingjelly", _spikingjelly_read, _spikingjelly_write,
                            "spikingjelly...nir_exchange.from_nir.import_from_nir(graph, dt=dt)",
                            "spikingjelly...nir_exchange.to_nir.export_to_nir(net, sample, dt=dt)")


def from_registry() -> tuple[NirFramework, ...]:
    """Every framework whose runner declares its NIR reader and writer (``Runner.nir``), in registry
    order, each once (a compiled twin shares its framework's)."""
    import importlib

    from ..runners import registry

    found: dict[str, NirFramework] = {}
    for cls in registry().values():
        if cls.nir:
            module, _, attr = cls.nir.partition(":")
            fw = getattr(importlib.import_module(module), attr)
            found.setdefault(fw.name, fw)
    return tuple(found.values())


def __getattr__(name: str):
    if name == "FRAMEWORKS":  # derived from the registry on each use (plugins included)
        return from_registry()
    raise AttributeError(name)


def get(name: str) -> NirFramework:
    for fw in globals().get("FRAMEWORKS") or from_registry():
        if fw.name == name:
            return fw
    raise KeyError(name)

