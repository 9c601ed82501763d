"""Framework-neutral description of a benchmark: the network, the case, and the suite.

Canonical semantics (every runner must compute exactly this, or say how it deviates):

* Input ``x`` has layout ``[B, T, C]`` (batch, time, channels), float, usually binary spikes.
* ``linear``: ``I_t = x_t @ W.T + b`` with ``W`` of shape ``[out, in]`` (PyTorch layout).
* Image inputs (NMNIST) keep the flat layout ``[B, T, C*H*W]`` between layers, flattened in
  ``C, H, W`` order (PyTorch's NCHW); the network's ``input_shape`` is ``(C, H, W)``.
* ``conv2d``: per step, ``I_t = conv(x_t, W) + b`` (cross-correlation, PyTorch's ``Conv2d``) with
  ``W`` of shape ``[out, in, k, k]``, ``stride`` and zero ``padding``.
* ``maxpool``: per step and channel, the maximum over ``k x k`` windows, stride ``stride``
  (default ``k``), rows and columns that do not fill a window dropped. Gradient: to the *first*
  maximal element of each window in row-major order, PyTorch's rule. Pooling binary spikes makes ties
  the rule, not the exception, so this choice is part of the semantics (the surrogate gradient of
  a silent neuron flows through the window's first element).
* ``flatten``: marks the end of the spatial layers (a no-op on the flat layout; a ``linear`` after
  spatial layers needs it).
* ``lif`` (leaky integrate-and-fire), for ``t = 0..T-1`` with ``v_{-1} = 0, s_{-1} = 0``::

      subtract:         v_t = beta * v_{t-1} + I_t - threshold * r_t
      subtract_decayed: v_t = beta * (v_{t-1} - threshold * r_t) + I_t
      zero:             v_t = beta * (1 - r_t) * v_{t-1} + I_t
      none:             v_t = beta * v_{t-1} + I_t
      s_t = H(v_t - threshold)            (H(0) = 0: a spike needs v strictly above threshold)

  where ``r_t = s_{t-1}``, the previous step's spike (snnTorch's order); with ``detach_reset`` the
  gradient does not flow through ``r_t``. ``subtract_decayed`` is the soft reset of SpikingJelly,
  Sinabs, Rockpool and BrainPy, which subtract the threshold in the step that spikes and then decay
  (``beta * threshold`` is removed by the next step); it exists so that their deviation from
  ``subtract`` can be stated and checked. In the backward pass ``H'`` is replaced by the surrogate.
  ``spike_from: previous`` (default ``current``) emits ``s_t = H(v_{t-1} - threshold)``, the spike
  decided before the step's input is added, and resets with it (Spyx's LIF); the membrane is the
  same, and the layer's output is the ``current`` one delayed by one step.
* ``if``: ``lif`` with ``beta = 1``.
* ``cuba_lif`` (current-based): ``syn_t = alpha * syn_{t-1} + I_t`` and ``syn_t`` drives a ``lif``.
* ``recurrent: true`` (on ``lif``, ``if`` and ``cuba_lif``): a layer of ``n`` neurons also receives its
  own previous spikes through ``V`` (``[n, n]``, ``V[j, k]`` the weight from neuron ``k`` to neuron
  ``j``, no bias): ``I_t`` is replaced by ``I_t + s_{t-1} @ V.T`` (``s_{-1} = 0``) before the reset and
  threshold rule of the layer's ``reset``; for ``cuba_lif`` the recurrent term enters the synaptic
  current, ``syn_t = alpha * syn_{t-1} + I_t + s_{t-1} @ V.T``. ``s_{t-1} = H(v_{t-1} - threshold)``
  is the canonical spike of the previous step (with ``spike_from: previous`` that is the spike the
  layer emits at step ``t``). The gradient flows through ``s_{t-1}`` in the recurrent term (by the
  surrogate; ``detach_reset`` concerns only the reset term). A recurrent layer is evaluated step by
  step (``method: scan``).
* ``li`` (leaky integrator readout, no spikes): ``v_t = beta * v_{t-1} + I_t``; the readout trace is
  ``v`` of shape ``[B, T, O]``.
* Loss: softmax cross-entropy of ``mean_t v_t`` (``loss: mean``), ``max_t v_t`` (``loss: max``) or
  the last step's ``v_{T-1}`` (``loss: last``).
  A network may also end in a spiking layer (the one-layer sweep); its spike train is then the
  readout, and the loss is the same cross-entropy over its time-mean; ``loss: count`` (a spiking
  readout only) takes its spike count ``sum_t s_t`` instead.
* Population-coded readout (``network.population: P``, default 1): the last weight layer has
  ``classes * P`` outputs, and output ``c * P + p`` (``p = 0..P-1``) belongs to class ``c``
  (contiguous blocks). With ``r [B, classes * P]`` the readout reduced over time by the loss mode
  above, class ``c``'s score is the population's mean ``(1/P) sum_p r[:, c*P + p]``; under
  ``loss: count`` it is the population's spike count ``sum_p sum_t s_t[:, c*P + p]`` (a sum, not a
  mean). The loss is the softmax cross-entropy of the ``[B, classes]`` scores (mean over the batch),
  and accuracy (training and test) is their argmax, ties to the lowest class (as ``argmax`` in NumPy,
  JAX and PyTorch). How this relates to snnTorch 1.0's ``snntorch.functional``: ``loss: count`` with
  ``population: P`` is ``ce_count_loss(population_code=True, num_classes=classes)`` exactly (the same
  blocks, spikes summed over time and population, one cross-entropy) and ``accuracy_rate(...,
  population_code=True)`` is its accuracy; ``ce_rate_loss`` (a cross-entropy over the *neurons* at
  every step, averaged over time) is none of these losses, and with ``population_code=True`` it
  forms no population (its block loop has no effect, and it indexes ``weight``, None by default, so
  it raises). An ``li`` population's mean is linear in its input, the same function as one readout
  with the population's mean weights (only the training dynamics differ); a spiking population
  is where the code adds resolution (``P * T + 1`` count levels per class instead of ``T + 1``).

Canonical weights are a flat ``dict[str, np.ndarray]``: ``layers.{i}.weight`` ``[out, in]``,
``layers.{i}.bias`` ``[out]``, for trainable decays ``layers.{i}.beta`` ``[n]`` (per neuron), and for
a recurrent layer ``layers.{i}.recurrent`` ``[n, n]`` (``V`` above), where ``i`` is the layer's index in
:attr:`NetworkSpec.layers`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SnnbenchError
from .limits import MAX_CASES
from .naming import check_id

SURROGATES = ("arctan", "superspike", "sigmoid", "triangular", "boxcar", "straight_through")
RESETS = ("subtract", "subtract_decayed", "zero", "none")
#: which membrane a spiking layer's output spike is decided on (see the module docstring)
SPIKE_FROM = ("current", "previous")
NEURON_TYPES = ("lif", "if", "li", "cuba_lif", "lif_noreset", "psn", "masked_psn", "sliding_psn", "dsn")
#: parallel-in-time neurons (long-sequence suite); see runners/reference/parallel.py
PARALLEL_TYPES = ("lif_noreset", "psn", "masked_psn", "sliding_psn", "dsn")
#: neuron types that may be ``recurrent`` (their own previous spikes fed back through ``V [n, n]``)
RECURRENT_TYPES = ("lif", "if", "cuba_lif")
NORESET_METHODS = ("scan", "assoc", "fft")
#: how a LIF with reset (lif, if, cuba_lif) is evaluated: step by step, or chunks in parallel iterated to the
#: exact fixed point (runners/reference/parallel.py:lif_fixed_point); both compute the same spikes
RESET_METHODS = ("scan", "fixed_point")
WEIGHT_TYPES = ("linear", "conv2d")
#: stateless layers that only reshape or pool, allowed between a neuron layer and the next weight layer
SHAPE_TYPES = ("maxpool", "flatten")
#: per-sample input shape of each dataset, ``(C, H, W)`` for images; ``None``: ``(channels,)``
DATASET_SHAPES = {"nmnist": (2, 34, 34)}
#: how the readout trace is reduced over time for the loss; ``count`` (spike count) needs a spiking readout
LOSSES = ("mean", "max", "last", "count")
#: random: one shared Bernoulli input, timing only (epochs: 0); cue: the long-range recall task
DATASETS = ("shd", "nmnist", "random", "cue")
DEVICES = ("cpu", "gpu", "tpu", "auto")
DTYPES = ("float32", "bfloat16", "float16")
#: What a case's ``dtype`` means (mixed precision, as the JAX and PyTorch ecosystems define it).
PRECISION = {
    "float32": "everything in float32 (matrix products at full float32 precision, no TF32)",
    "bfloat16": "mixed: float32 master weights and optimizer state; weight layers, membranes (they "
                "accumulate in bfloat16), spikes and the readout trace computed in bfloat16; the readout's "
                "time mean, the loss and the gradients applied to the weights in float32",
    "float16": "as bfloat16 with float16, plus dynamic loss scaling: the loss is multiplied by a scale "
               "(2^15 at first) before the backward pass, gradients are divided by it, a step whose "
               "gradients are not finite is skipped and halves the scale, 2000 finite steps in a row double it",
}
#: float16 dynamic loss scaling, shared by every runner (see PRECISION)
LOSS_SCALE_START = 2.0 ** 15
LOSS_SCALE_PERIOD = 2000
OPTIMIZERS = ("adam", "sgd")
#: a suite name becomes a directory name under --out
SUITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class SurrogateSpec:
    """Surrogate derivative used in place of the Heaviside step's derivative.

    ``slope`` sets the sharpness; each function's peak value is documented in
    :mod:`snnbench.runners.reference.surrogates`.
    """

    name: str = "arctan"
    slope: float = 2.0


@dataclass(frozen=True)
class LayerSpec:
    """One layer: a weight layer (``linear``, ``conv2d``), a neuron layer (``lif``, ``if``, ``li``,
    ``cuba_lif``, the parallel-in-time types) or a shape layer (``maxpool``, ``flatten``)."""

    type: str
    out: int | None = None  # linear: output features; conv2d: output channels
    bias: bool = True  # linear, conv2d
    kernel: int | None = None  # conv2d (default 5), maxpool (default 2): square kernel side, pixels
    stride: int | None = None  # conv2d (default 1), maxpool (default kernel)
    padding: int = 0  # conv2d: zero padding on each side, pixels
    beta: float = 0.9  # membrane decay per step, 0 < beta <= 1 (dsn: its initial decay)
    alpha: float = 0.8  # synaptic decay per step (cuba_lif)
    threshold: float = 1.0
    reset: str = "subtract"
    detach_reset: bool = True
    spike_from: str = "current"  # current: s_t = H(v_t - th); previous: H(v_{t-1} - th) (Spyx)
    learn_beta: bool = False
    method: str = "scan"  # lif_noreset: scan | assoc | fft; lif, if, cuba_lif: scan | fixed_point
    relu: bool = False  # lif_noreset: membrane clipped at 0 each step, v_t = max(0, beta v_{t-1} + I_t)
    k: int = 4  # masked_psn band, sliding_psn taps, dsn decay-conv taps
    tau: float = 0.25  # dsn: a_t = sigmoid(conv)^(1/tau)
    levels: int = 1  # dsn: 1 = spikes, > 1 = integer activation clip(round(H), 0, levels)
    recurrent: bool = False  # lif, if, cuba_lif: + V s_{t-1}, V [n, n] the weight layers.{i}.recurrent

    @property
    def is_neuron(self) -> bool:
        return self.type in NEURON_TYPES

    @property
    def is_weight(self) -> bool:
        return self.type in WEIGHT_TYPES

    @property
    def spiking(self) -> bool:
        return self.type in ("lif", "if", "cuba_lif") + PARALLEL_TYPES

    @property
    def decay(self) -> float:
        return 1.0 if self.type == "if" else self.beta


def layer_output_shape(layer: LayerSpec, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Per-sample output shape of ``layer`` for input ``shape`` (assumes a validated spec)."""
    if layer.type == "linear":
        return (int(layer.out),)
    if layer.type == "flatten":
        return (math.prod(shape),)
    if layer.type in ("conv2d", "maxpool"):
        c, h, w = shape
        k, stride = int(layer.kernel), int(layer.stride)
        pad = layer.padding if layer.type == "conv2d" else 0
        ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        return (int(layer.out) if layer.type == "conv2d" else c, ho, wo)
    return shape


@dataclass(frozen=True)
class NetworkSpec:
    """An SNN of alternating weight and neuron layers (a neuron layer may be ``recurrent``), ending in an
    ``li`` readout."""

    inputs: int
    layers: tuple[LayerSpec, ...]
    surrogate: SurrogateSpec = SurrogateSpec()
    time_steps: int = 0  # the case's T: PSN weights are [T, T]
    input_shape: tuple[int, ...] = ()  # per-sample shape, (C, H, W) for images; () means (inputs,)
    population: int = 1  # readout neurons per class: output c * P + p belongs to class c

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.input_shape) or (self.inputs,)

    def shapes(self) -> list[tuple[int, ...]]:
        """Per-sample output shape after each layer: ``(n,)`` or ``(C, H, W)``."""
        out, shape = [], self.sample_shape
        for layer in self.layers:
            shape = layer_output_shape(layer, shape)
            out.append(shape)
        return out

    def sizes(self) -> list[int]:
        """Feature count after each layer (neuron layers keep their input's size)."""
        return [math.prod(shape) for shape in self.shapes()]

    def input_shapes(self) -> list[tuple[int, ...]]:
        """Per-sample input shape of each layer."""
        return [self.sample_shape, *self.shapes()[:-1]]

    @property
    def outputs(self) -> int:
        return self.sizes()[-1]

    @property
    def classes(self) -> int:
        """Classes the readout scores: its outputs over the population size."""
        return self.outputs // self.population

    def hidden_sizes(self) -> list[int]:
        """Sizes of the spiking layers, in order."""
        return [n for layer, n in zip(self.layers, self.sizes()) if layer.spiking]

    def describe(self) -> str:
        parts = ["x".join(map(str, self.sample_shape))]
        for layer, n in zip(self.layers, self.sizes()):
            if layer.type == "conv2d":
                parts.append(f"C{layer.out}k{layer.kernel}")
            elif layer.type == "maxpool":
                parts.append(f"P{layer.kernel}")
            elif layer.type == "flatten":
                parts.append("F")
            else:
                kind = ("R" if layer.recurrent else "") + layer.type.upper()  # RLIF: a recurrent LIF
                parts.append(kind if layer.is_neuron else f"{n}")
        return "-".join(parts)

    def with_inputs(self, inputs: int) -> "NetworkSpec":
        return dataclasses.replace(self, inputs=inputs)


@dataclass(frozen=True)
class CaseSpec:
    """One benchmark case: workload, data and training hyper-parameters shared by every runner."""

    id: str
    dataset: str = "shd"
    time_steps: int = 128
    channels: int = 128  # input channels after downsampling (SHD: 700 -> channels)
    duration_s: float = 1.0  # time window binned into time_steps
    batch: int = 128
    epochs: int = 10
    optimizer: str = "adam"
    lr: float = 1e-3
    loss: str = "mean"
    augment_shift: int = 0  # on-device random channel shift, +-this many channels
    seed: int = 0
    device: str = "auto"
    devices: int = 1  # data-parallel over this many devices of `device`; the batch is split among them
    dtype: str = "float32"
    input_rate: float = 0.1  # dataset random: spike probability per input channel and step
    eval_time_steps: tuple[int, ...] = ()  # after training, evaluate step by step at these lengths
    train_samples: int | None = None  # None: the whole split
    test_samples: int | None = None
    timeout_s: float = 3600.0
    group: str = ""  # the sweep a case was expanded from (plots draw one line per group)
    runners: tuple[str, ...] = ()  # only these of the suite's runners run the case; () all of them

    @property
    def dt_s(self) -> float:
        return self.duration_s / self.time_steps


@dataclass(frozen=True)
class Case:
    """A case together with its network: the unit a runner is asked to run."""

    spec: CaseSpec
    network: NetworkSpec

    @property
    def id(self) -> str:
        return self.spec.id

    def shape(self) -> dict[str, Any]:
        shape = {
            "T": self.spec.time_steps,
            "batch": self.spec.batch,
            "inputs": self.network.inputs,
            "layers": self.network.sizes(),
            "network": self.network.describe(),
        }
        if self.spec.devices > 1:  # data-parallel: the batch above is the global one
            shape.update(devices=self.spec.devices, per_device_batch=self.spec.batch // self.spec.devices)
        if self.spec.dataset == "random":  # the sweeps: width and group for scaling plots
            shape["n"] = self.network.inputs
            shape["group"] = self.spec.group or self.id
        if self.network.population > 1:  # a population-coded readout: P neurons per class
            shape["population"] = self.network.population
        return shape


TIMING_FIELDS = {"warmup": int, "min_repeats": int, "min_time_s": float, "max_repeats": int, "cv_threshold": float,
                 "ci_rel": float}


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    runners: tuple[str, ...]
    cases: tuple[Case, ...]
    path: str = ""
    #: repeat policy for one-batch timings (see harness.timing.RepeatPolicy)
    timing: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: a worker whose resident memory passes this is stopped and recorded as ``oom``
    memory_limit_gb: float | None = None


# ----------------------------------------------------------------------------------------- parsing


def _fail(where: str, msg: str) -> None:
    raise SnnbenchError(f"{where}: {msg}")


def _build(cls, data: Any, where: str, overrides: dict | None = None):
    """Build dataclass ``cls`` from a mapping, naming the bad field and file on error."""
    if not isinstance(data, dict):
        _fail(where, f"expected a mapping, got {type(data).__name__}")
    data = {**data, **(overrides or {})}
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        _fail(where, f"unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})")
    values = {}
    for name, value in data.items():
        f = known[name]
        values[name] = _coerce(value, f.type, f"{where}.{name}")
    try:
        return cls(**values)
    except TypeError as exc:
        _fail(where, str(exc))


def _coerce(value: Any, type_name: str, where: str) -> Any:
    t = str(type_name)
    if value is None:
        if "None" in t:
            return None
        _fail(where, "must not be empty")
    if t.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(where, f"expected an integer, got {value!r}")
        return value
    if t == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(where, f"expected a number, got {value!r}")
        if not math.isfinite(value):  # .nan / .inf would run to a NaN loss, or a timeout that never fires
            _fail(where, f"expected a finite number, got {value!r}")
        return float(value)
    if t.startswith("tuple[str"):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
            _fail(where, f"expected a list of names, got {value!r}")
        return tuple(value)
    if t.startswith("tuple[int"):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                           for v in value):
            _fail(where, f"expected a list of integers, got {value!r}")
        return tuple(value)
    if t == "bool":
        if not isinstance(value, bool):
            _fail(where, f"expected true or false, got {value!r}")
        return value
    if t == "str":
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            _fail(where, f"expected a string, got {value!r}")
        return str(value)
    return value


def _check_choice(where: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        _fail(where, f"{value!r} is not one of {', '.join(choices)}")


def parse_network(data: Any, where: str, inputs: int, time_steps: int = 0,
                  input_shape: tuple[int, ...] = ()) -> NetworkSpec:
    """Parse and validate a ``network:`` mapping. ``inputs`` (and, for images, ``input_shape``)
    come from the case."""
    if not isinstance(data, dict):
        _fail(where, "expected a mapping with 'layers'")
    unknown = sorted(set(data) - {"layers", "surrogate", "neuron", "population"})
    if unknown:
        _fail(where, f"unknown field {unknown[0]!r} (known: layers, neuron, population, surrogate)")
    surrogate = _build(SurrogateSpec, data.get("surrogate", {}), f"{where}.surrogate")
    _check_choice(f"{where}.surrogate.name", surrogate.name, SURROGATES)
    if not surrogate.slope > 0:
        _fail(f"{where}.surrogate.slope", "must be > 0")
    neuron_defaults = data.get("neuron", {}) or {}
    if not isinstance(neuron_defaults, dict):
        _fail(f"{where}.neuron", "expected a mapping of neuron defaults")
    raw_layers = data.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers:
        _fail(f"{where}.layers", "expected a non-empty list of layers")
    layers = []
    shape = tuple(input_shape) or (inputs,)
    for i, raw in enumerate(raw_layers):
        lw = f"{where}.layers[{i}]"
        if not isinstance(raw, dict) or "type" not in raw:
            _fail(lw, "each layer needs a 'type'")
        kind = raw["type"]
        _check_choice(f"{lw}.type", str(kind), WEIGHT_TYPES + NEURON_TYPES + SHAPE_TYPES)
        merged = {**neuron_defaults, **raw} if kind in NEURON_TYPES else dict(raw)
        if kind == "linear" and merged.get("out") == "inputs":  # as wide as the input (the layer sweep)
            merged = {**merged, "out": inputs}
        if kind in ("conv2d", "maxpool"):
            merged.setdefault("kernel", 5 if kind == "conv2d" else 2)
            merged.setdefault("stride", 1 if kind == "conv2d" else merged["kernel"])
        layer = _build(LayerSpec, merged, lw)
        if kind in ("linear", "conv2d"):
            if not isinstance(layer.out, int) or layer.out <= 0:
                _fail(f"{lw}.out", f"a {kind} layer needs a positive 'out'")
        if kind in ("conv2d", "maxpool"):
            if layer.kernel < 1 or layer.stride < 1 or layer.padding < 0:
                _fail(lw, "kernel and stride must be >= 1 and padding >= 0")
            if len(shape) != 3:
                _fail(lw, f"{kind} needs an image input (C, H, W), got a flat input of {math.prod(shape)}")
            out_shape = layer_output_shape(layer, shape)
            if min(out_shape[1:]) < 1:
                _fail(lw, f"{kind} (kernel {layer.kernel}) does not fit its {shape[1]}x{shape[2]} input")
        if kind == "linear" and len(shape) != 1:
            _fail(lw, f"linear needs a flat input: add a 'flatten' layer after the {'x'.join(map(str, shape))} "
                      "spatial layers")
        if layer.is_neuron:
            _check_choice(f"{lw}.reset", layer.reset, RESETS)
            _check_choice(f"{lw}.spike_from", layer.spike_from, SPIKE_FROM)
            if not 0.0 < layer.beta <= 1.0:
                _fail(f"{lw}.beta", f"must be in (0, 1], got {layer.beta}")
            if not 0.0 < layer.alpha <= 1.0:
                _fail(f"{lw}.alpha", f"must be in (0, 1], got {layer.alpha}")
            if layer.threshold <= 0:
                _fail(f"{lw}.threshold", "must be > 0")
            _check_choice(f"{lw}.method", layer.method, NORESET_METHODS + RESET_METHODS[1:])
            if kind == "lif_noreset" and layer.method not in NORESET_METHODS:
                _fail(f"{lw}.method", f"a lif_noreset layer is evaluated by {', '.join(NORESET_METHODS)}")
            if layer.relu and kind != "lif_noreset":
                _fail(f"{lw}.relu", "only a lif_noreset layer can clip its membrane at zero")
            if layer.k < 1 or layer.levels < 1 or layer.tau <= 0:
                _fail(lw, "k and levels must be >= 1 and tau > 0")
            _check_recurrent(layer, lw)
        elif layer.recurrent:
            _fail(f"{lw}.recurrent", f"only a neuron layer ({', '.join(RECURRENT_TYPES)}) can be recurrent")
        shape = layer_output_shape(layer, shape)
        layers.append(layer)
    # Structure: weight layer then neuron layer, pairwise (shape layers may follow a neuron layer);
    # the last layer is a neuron layer (an LI readout, or spikes).
    core = [(i, layer) for i, layer in enumerate(layers) if layer.type not in SHAPE_TYPES]
    for j, (i, layer) in enumerate(core):
        if (j % 2 == 0) != layer.is_weight:
            _fail(f"{where}.layers[{i}]", "layers must alternate weight layer, neuron layer")
    for i, layer in enumerate(layers):
        if layer.type in SHAPE_TYPES and (i == 0 or layers[i - 1].is_weight):
            _fail(f"{where}.layers[{i}]", f"'{layer.type}' must follow a neuron layer (or another shape layer)")
    if len(core) % 2:
        _fail(f"{where}.layers", "the last weight layer needs a neuron layer after it")
    if not layers[-1].is_neuron:
        _fail(f"{where}.layers[{len(layers) - 1}]", "the network must end in a neuron layer")
    for i, layer in enumerate(layers[:-1]):
        if layer.type == "li":
            _fail(f"{where}.layers[{i}]", "'li' is only allowed as the readout (last layer)")
    population = _check_population(data.get("population", 1), math.prod(shape), f"{where}.population")
    return NetworkSpec(inputs=inputs, layers=tuple(layers), surrogate=surrogate, time_steps=time_steps,
                       input_shape=tuple(input_shape), population=population)


def _check_population(value: Any, outputs: int, where: str) -> int:
    """``network.population``: a whole number of readout neurons per class that divides the readout."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        _fail(where, f"expected a whole number of readout neurons per class (>= 1), got {value!r}")
    if outputs % value:
        _fail(where, f"{value} neurons per class do not divide the readout's {outputs} outputs: the last weight "
                     f"layer needs (number of classes) x {value} outputs")
    return value


def check_loss(spec: CaseSpec, network: NetworkSpec, where: str) -> None:
    """``loss: count`` sums spikes over time: it needs a network that ends in a spiking layer."""
    if spec.loss == "count" and not network.layers[-1].spiking:
        _fail(f"{where}.loss", f"'count' is a spike count and the readout is a {network.layers[-1].type} layer "
                               "(no spikes): use mean, max or last, or end the network in a spiking layer")


def _check_recurrent(layer: LayerSpec, where: str) -> None:
    """Refuse ``recurrent: true`` where the spec gives it no meaning."""
    if not layer.recurrent:
        return
    if layer.type not in RECURRENT_TYPES:
        _fail(f"{where}.recurrent", f"a {layer.type} layer cannot be recurrent (recurrent types: "
                                    f"{', '.join(RECURRENT_TYPES)})")
    if layer.method != "scan":
        _fail(f"{where}.method", "a recurrent layer is evaluated step by step: its spikes feed its next step "
                                 "through V, so the fixed-point parallel method does not apply (use method: scan)")


#: seeds run from 0 to 2**32 - 1: what NumPy's legacy seeding, JAX's PRNG keys and torch all accept
SEED_LIMIT = 2**32


def check_seed(value: Any, where: str) -> int:
    """``value`` if it is a seed every framework accepts (a non-negative integer below 2**32)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_LIMIT:
        raise SnnbenchError(f"{where}: a seed is an integer from 0 to {SEED_LIMIT - 1}, got {value!r}")
    return value


def validate_case(case: CaseSpec, where: str) -> None:
    check_id(case.id, f"{where}.id")
    check_seed(case.seed, f"{where}.seed")
    if len(set(case.runners)) != len(case.runners):
        _fail(f"{where}.runners", f"a runner is named twice in {list(case.runners)}")
    _check_choice(f"{where}.dataset", case.dataset, DATASETS)
    _check_choice(f"{where}.loss", case.loss, LOSSES)
    _check_choice(f"{where}.device", case.device, DEVICES)
    _check_choice(f"{where}.dtype", case.dtype, DTYPES)
    _check_choice(f"{where}.optimizer", case.optimizer, OPTIMIZERS)
    for name in ("time_steps", "channels", "batch"):
        if getattr(case, name) <= 0:
            _fail(f"{where}.{name}", "must be > 0")
    if case.devices < 1:
        _fail(f"{where}.devices", f"must be >= 1, got {case.devices}")
    if case.batch % case.devices:
        _fail(f"{where}.devices", f"the batch ({case.batch}) must split evenly over {case.devices} devices")
    if case.epochs < 0:
        _fail(f"{where}.epochs", "must be >= 0")
    if any(t <= 0 or t % 8 for t in case.eval_time_steps):
        _fail(f"{where}.eval_time_steps", "each length must be a positive multiple of 8")
    if case.dataset == "cue" and case.epochs < 1:
        _fail(f"{where}.epochs", "the cue task trains: epochs must be >= 1")
    if case.dataset == "cue" and case.channels < 8:
        _fail(f"{where}.channels", "the cue task needs at least 8 channels (four cue groups and as many of noise)")
    if not 0.0 < case.input_rate <= 1.0:
        _fail(f"{where}.input_rate", "must be in (0, 1]")
    if case.dataset == "random" and case.epochs:
        _fail(f"{where}.epochs", "a 'random' dataset case is timing only: epochs must be 0")
    if case.dataset != "random" and case.time_steps % 8:
        _fail(f"{where}.time_steps", "must be a multiple of 8 (spikes are bit-packed along time)")
    if not case.lr > 0:
        _fail(f"{where}.lr", "must be > 0")
    if case.augment_shift < 0:
        _fail(f"{where}.augment_shift", "must be >= 0")
    if case.duration_s <= 0:
        _fail(f"{where}.duration_s", "must be > 0")
    if case.timeout_s <= 0:
        _fail(f"{where}.timeout_s", f"must be > 0 seconds, got {case.timeout_s:g}")
    for name in ("train_samples", "test_samples"):
        n = getattr(case, name)
        if n is not None and n < case.batch and name == "train_samples":
            _fail(f"{where}.{name}", f"must be at least one batch ({case.batch})")


def parse_suite(data: Any, path: str, quick: bool = False) -> Suite:
    """Parse a suite mapping (as read from YAML). ``quick`` applies the suite's ``quick:`` overrides."""
    where = Path(path).name if path else "suite"
    if not isinstance(data, dict):
        _fail(where, "a suite file must be a mapping with 'suite', 'network' and 'cases'")
    allowed = {"suite", "description", "runners", "defaults", "network", "cases", "quick", "quick_cases",
               "timing", "memory_limit_gb"}
    # "x-" keys hold YAML anchors (shared networks) and are not fields
    unknown = sorted(k for k in set(data) - allowed if not str(k).startswith("x-"))
    if unknown:
        _fail(where, f"unknown top-level field {unknown[0]!r} (known: {', '.join(sorted(allowed))})")
    name = data.get("suite")
    if not isinstance(name, str) or not name:
        _fail(f"{where}.suite", "needs a suite name")
    if not SUITE_NAME.fullmatch(name):  # it names the run directory: no path may escape --out
        _fail(f"{where}.suite", f"{name!r} is not a valid suite name (letters, digits, '.', '_', '-'; "
                                "starting with a letter or digit)")
    runners = data.get("runners", ["reference"])
    if runners == "all":  # every runner of the registry, resolved where the runners are known
        runners = ["all"]
    if not isinstance(runners, list) or not all(isinstance(r, str) for r in runners):
        _fail(f"{where}.runners", "expected a list of runner names, or 'all'")
    twice = next((r for i, r in enumerate(runners) if r in runners[:i]), None)
    if twice is not None or not runners:
        _fail(f"{where}.runners", f"{twice!r} is named twice" if twice is not None else "names no runner")
    defaults = data.get("defaults", {}) or {}
    if not isinstance(defaults, dict):
        _fail(f"{where}.defaults", "expected a mapping")
    quick_over = data.get("quick", {}) or {}
    if not isinstance(quick_over, dict):
        _fail(f"{where}.quick", "expected a mapping")
    raw_cases = data.get("quick_cases", data.get("cases")) if quick else data.get("cases")
    if not isinstance(raw_cases, list) or not raw_cases:
        _fail(f"{where}.cases", "expected a non-empty list of cases")
    expanded = []
    for i, raw in enumerate(raw_cases):  # counted before each sweep is expanded: a huge one is never built
        expanded += expand_sweep(raw, f"{where}.cases[{i}]", room=MAX_CASES - len(expanded))
    raw_cases = expanded
    cases, seen = [], set()
    for i, raw in enumerate(raw_cases):
        cw = f"{where}.cases[{i}]"
        if not isinstance(raw, dict):
            _fail(cw, "expected a mapping")
        raw = dict(raw)
        network_raw = raw.pop("network", data.get("network"))
        if network_raw is None:
            _fail(cw, "no 'network' for this case and no suite-level 'network'")
        case_quick = {k: v for k, v in quick_over.items() if k != "timing"}
        spec = _build(CaseSpec, {**defaults, **raw}, cw, overrides=case_quick if quick else None)
        input_shape = DATASET_SHAPES.get(spec.dataset, ())
        if input_shape:  # the sensor fixes the input size
            if "channels" in {**defaults, **raw}:
                _fail(f"{cw}.channels", f"{spec.dataset} input is {'x'.join(map(str, input_shape))} "
                                         "(set by the sensor): remove 'channels'")
            spec = dataclasses.replace(spec, channels=math.prod(input_shape))
        validate_case(spec, cw)
        if spec.id in seen:
            _fail(f"{cw}.id", f"duplicate case id {spec.id!r}")
        seen.add(spec.id)
        network = parse_network(network_raw, f"{cw}.network" if "network" in raw else f"{where}.network",
                                spec.channels, spec.time_steps, input_shape)
        check_loss(spec, network, cw)
        cases.append(Case(spec=spec, network=network))
    timing = parse_timing(data.get("timing", {}) or {}, f"{where}.timing")
    if quick and isinstance(quick_over.get("timing"), dict):
        timing = {**timing, **parse_timing(quick_over["timing"], f"{where}.quick.timing")}
    limit = data.get("memory_limit_gb")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit > 0
                              or not math.isfinite(limit)):
        _fail(f"{where}.memory_limit_gb", f"expected a positive number, got {limit!r}")
    return Suite(
        name=name,
        description=str(data.get("description", "")),
        runners=tuple(runners),
        cases=tuple(cases),
        path=str(path),
        timing=timing,
        memory_limit_gb=float(limit) if limit is not None else None,
    )


def select_cases(suite: Suite, patterns: str | None, flag: str = "--cases") -> Suite:
    """Keep the cases whose id matches one of the comma-separated glob ``patterns`` (None: all). A list
    that names nothing, names a pattern twice, or holds a pattern that matches no case is refused."""
    import fnmatch

    from .naming import parse_list

    wanted = parse_list(patterns, flag)
    if wanted is None:
        return suite
    known = ", ".join(c.id for c in suite.cases)
    for pattern in wanted:
        if not any(fnmatch.fnmatchcase(c.id, pattern) for c in suite.cases):
            what = f"{pattern!r}" if len(wanted) > 1 else f"{patterns!r}"
            raise SnnbenchError(f"{flag}: no case of suite {suite.name!r} matches {what} (cases: {known})")
    cases = tuple(c for c in suite.cases if any(fnmatch.fnmatchcase(c.id, p) for p in wanted))
    return dataclasses.replace(suite, cases=cases)


def expand_sweep(raw: Any, where: str, room: int = MAX_CASES) -> list[Any]:
    """A case with ``sweep: {field: [values...]}`` becomes one case per combination, its id
    suffixed with each field's short name and value (``id: layer`` -> ``layer-channels512-T100``).
    More than ``room`` cases (what is left of a suite's :data:`~snnbench.limits.MAX_CASES`) is refused
    before any is made."""
    if not isinstance(raw, dict) or "sweep" not in raw:
        if room < 1:
            _fail(where, f"a suite may have at most {MAX_CASES} cases")
        return [raw]
    sweep = raw["sweep"]
    if not isinstance(sweep, dict) or not sweep or not all(isinstance(v, list) and v for v in sweep.values()):
        _fail(f"{where}.sweep", "expected a mapping of field -> non-empty list of values")
    combinations = math.prod(len(v) for v in sweep.values())
    if combinations > room:
        _fail(f"{where}.sweep", f"expands to {combinations:,} cases; a suite may have at most {MAX_CASES} cases "
                                f"({MAX_CASES - room} before this sweep)")
    import itertools

    short = {"time_steps": "T", "batch": "B", "channels": "n", "devices": "d"}
    base = {k: v for k, v in raw.items() if k != "sweep"}
    out = []
    for values in itertools.product(*sweep.values()):
        combo = dict(zip(sweep.keys(), values))
        suffix = "-".join(f"{short.get(k, k)}{v}" for k, v in combo.items())
        out.append({**base, **combo, "id": f"{base.get('id', 'case')}-{suffix}", "group": base.get("id", "case")})
    return out


def parse_timing(data: Any, where: str) -> dict[str, Any]:
    """Validate a ``timing:`` mapping (repeat policy for one-batch timings)."""
    if not isinstance(data, dict):
        _fail(where, "expected a mapping")
    out = {}
    for key, value in data.items():
        if key not in TIMING_FIELDS:
            _fail(where, f"unknown field {key!r} (known: {', '.join(TIMING_FIELDS)})")
        kind = TIMING_FIELDS[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
            _fail(f"{where}.{key}", f"expected {'an integer' if kind is int else 'a number'}, got {value!r}")
        if not math.isfinite(value):
            _fail(f"{where}.{key}", f"expected a finite number, got {value!r}")
        if value < 0 or (key in ("min_repeats", "max_repeats") and value < 1):
            _fail(f"{where}.{key}", f"out of range: {value!r}")
        out[key] = kind(value)
    return out


def load_suite(name_or_path: str, quick: bool = False, suites_dir: Path | None = None) -> Suite:
    """Load ``suites/<name>.yaml`` or a YAML file path, validated (read within the bounds of
    :func:`snnbench.limits.load_yaml`)."""
    from .limits import load_yaml

    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        base = suites_dir or default_suites_dir()
        candidate = base / f"{name_or_path}.yaml"
        if not candidate.exists():
            known = ", ".join(sorted(p.stem for p in base.glob("*.yaml"))) or "none"
            if path.suffix in (".yaml", ".yml"):
                raise SnnbenchError(f"suite file {name_or_path} does not exist")
            raise SnnbenchError(f"unknown suite {name_or_path!r} (known: {known})")
        path = candidate
    data = load_yaml(path, "suite file")
    return parse_suite(data, str(path.resolve()), quick=quick)


def default_suites_dir() -> Path:
    """``suites/`` of the checkout, or the current directory's ``suites/``."""
    here = Path(__file__).resolve().parent.parent / "suites"
    return here if here.exists() else Path.cwd() / "suites"


# ----------------------------------------------------------------------------- canonical weights


def init_weights(network: NetworkSpec, seed: int) -> dict[str, np.ndarray]:
    """Canonical initial weights, identical for every runner.

    PyTorch's default ``nn.Linear`` scheme: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weight and bias,
    drawn from NumPy's PCG64 so that they do not depend on any framework's RNG.
    """
    rng = np.random.default_rng(seed)
    weights: dict[str, np.ndarray] = {}
    n_in = network.inputs
    for i, (layer, in_shape) in enumerate(zip(network.layers, network.input_shapes())):
        n_in = math.prod(in_shape)
        if layer.type == "conv2d":  # nn.Conv2d's default: the same bound with fan_in = in * k * k
            c_in, k = in_shape[0], int(layer.kernel)
            bound = 1.0 / math.sqrt(c_in * k * k)
            weights[f"layers.{i}.weight"] = rng.uniform(-bound, bound, (layer.out, c_in, k, k)).astype(np.float32)
            if layer.bias:
                weights[f"layers.{i}.bias"] = rng.uniform(-bound, bound, (layer.out,)).astype(np.float32)
        elif layer.type == "linear":
            bound = 1.0 / math.sqrt(n_in)
            weights[f"layers.{i}.weight"] = rng.uniform(-bound, bound, (layer.out, n_in)).astype(np.float32)
            if layer.bias:
                weights[f"layers.{i}.bias"] = rng.uniform(-bound, bound, (layer.out,)).astype(np.float32)
        elif layer.type in ("psn", "masked_psn"):
            T = network.time_steps
            bound = 1.0 / math.sqrt(T)
            weights[f"layers.{i}.psn_weight"] = rng.uniform(-bound, bound, (T, T)).astype(np.float32)
            weights[f"layers.{i}.psn_bias"] = np.full((T,), -layer.threshold, np.float32)
        elif layer.type == "sliding_psn":
            weights[f"layers.{i}.taps"] = (layer.beta ** np.arange(layer.k)).astype(np.float32)
            weights[f"layers.{i}.tap_bias"] = np.full((), -layer.threshold, np.float32)
        elif layer.type == "dsn":
            weights[f"layers.{i}.conv_weight"] = rng.uniform(-0.1, 0.1, (layer.k, n_in)).astype(np.float32)
            # initial decay a = sigmoid(bias)^(1/tau) = beta, as for a LIF: bias = logit(beta^tau)
            p = min(layer.beta ** layer.tau, 1.0 - 1e-7)
            weights[f"layers.{i}.conv_bias"] = np.full((n_in,), math.log(p / (1.0 - p)), np.float32)
        elif layer.is_neuron and layer.learn_beta:
            weights[f"layers.{i}.beta"] = np.full((n_in,), layer.decay, np.float32)
        if layer.recurrent:  # V [n, n]: as a linear of fan-in n, drawn in layer order from the same stream
            bound = 1.0 / math.sqrt(n_in)
            weights[f"layers.{i}.recurrent"] = rng.uniform(-bound, bound, (n_in, n_in)).astype(np.float32)
    return weights


def param_shapes(network: NetworkSpec) -> dict[str, tuple[int, ...]]:
    """The canonical weights' names and shapes, as :func:`init_weights` makes them, without allocating any
    (a case's memory is estimated from them before it runs)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (layer, in_shape) in enumerate(zip(network.layers, network.input_shapes())):
        n_in = math.prod(in_shape)
        if layer.type == "conv2d":
            k = int(layer.kernel)
            shapes[f"layers.{i}.weight"] = (int(layer.out), in_shape[0], k, k)
            if layer.bias:
                shapes[f"layers.{i}.bias"] = (int(layer.out),)
        elif layer.type == "linear":
            shapes[f"layers.{i}.weight"] = (int(layer.out), n_in)
            if layer.bias:
                shapes[f"layers.{i}.bias"] = (int(layer.out),)
        elif layer.type in ("psn", "masked_psn"):
            T = network.time_steps
            shapes[f"layers.{i}.psn_weight"] = (T, T)
            shapes[f"layers.{i}.psn_bias"] = (T,)
        elif layer.type == "sliding_psn":
            shapes[f"layers.{i}.taps"] = (layer.k,)
            shapes[f"layers.{i}.tap_bias"] = ()
        elif layer.type == "dsn":
            shapes[f"layers.{i}.conv_weight"] = (layer.k, n_in)
            shapes[f"layers.{i}.conv_bias"] = (n_in,)
        elif layer.is_neuron and layer.learn_beta:
            shapes[f"layers.{i}.beta"] = (n_in,)
        if layer.recurrent:
            shapes[f"layers.{i}.recurrent"] = (n_in, n_in)
    return shapes


def weight_shapes(network: NetworkSpec) -> dict[str, tuple[int, ...]]:
    return param_shapes(network)


def check_weights(network: NetworkSpec, weights: dict[str, np.ndarray]) -> None:
    """Raise if ``weights`` does not have exactly the canonical names and shapes."""
    expected = weight_shapes(network)
    if set(weights) != set(expected):
        missing = sorted(set(expected) - set(weights))
        extra = sorted(set(weights) - set(expected))
        raise ValueError(f"canonical weights mismatch: missing {missing}, unexpected {extra}")
    for k, shape in expected.items():
        if tuple(np.shape(weights[k])) != shape:
            raise ValueError(f"{k}: shape {np.shape(weights[k])}, expected {shape}")



# ------------------------------------------------------------------------------- serialization


def case_to_dict(case: Case) -> dict[str, Any]:
    """A JSON-able form of a case (sent to worker processes, stored in records)."""
    return dataclasses.asdict(case)


def network_from_dict(net: dict[str, Any]) -> NetworkSpec:
    """The inverse of ``dataclasses.asdict(network)``."""
    return NetworkSpec(
        inputs=net["inputs"],
        layers=tuple(LayerSpec(**layer) for layer in net["layers"]),
        surrogate=SurrogateSpec(**net["surrogate"]),
        time_steps=net.get("time_steps", 0),
        input_shape=tuple(net.get("input_shape", ())),
        population=int(net.get("population", 1)),
    )


def case_from_dict(data: dict[str, Any]) -> Case:
    network = network_from_dict(data["network"])
    spec = dict(data["spec"])
    spec["eval_time_steps"] = tuple(spec.get("eval_time_steps", ()))
    spec["runners"] = tuple(spec.get("runners", ()))
    return Case(spec=CaseSpec(**spec), network=network)


def with_spiking_layers(case: Case, **fields: Any) -> Case:
    """``case`` with ``fields`` set on every spiking layer (to describe what a runner really computes)."""
    layers = tuple(dataclasses.replace(layer, **fields) if layer.spiking else layer for layer in case.network.layers)
    return dataclasses.replace(case, network=dataclasses.replace(case.network, layers=layers))


def with_reset_attached(case: Case) -> Case:
    """``case`` with the reset's gradient attached on every spiking layer (frameworks whose reset
    always passes gradient through the spike: Spyx, Rockpool, BrainPy)."""
    return with_spiking_layers(case, detach_reset=False)


def with_reset(case: Case, old: str, new: str) -> Case:
    """``case`` with reset ``new`` on every spiking layer whose reset is ``old``."""
    layers = tuple(dataclasses.replace(layer, reset=new) if layer.spiking and layer.reset == old else layer
                   for layer in case.network.layers)
    return dataclasses.replace(case, network=dataclasses.replace(case.network, layers=layers))


def with_surrogate(case: Case, name: str, slope: float) -> Case:
    """``case`` with another surrogate derivative."""
    network = dataclasses.replace(case.network, surrogate=SurrogateSpec(name, slope))
    return dataclasses.replace(case, network=network)


def gemm_shapes(case: Case) -> list[tuple[int, int, int]]:
    """``(M, K, N)`` of each weight layer's forward product ``[M, K] @ [K, N]``, ``M = T * B``.

    A ``conv2d`` counts as its im2col product: ``M = T * B * H_out * W_out``, ``K = C_in * k * k``."""
    tb, shapes, net = case.spec.time_steps * case.spec.batch, [], case.network
    for layer, in_shape, out_shape in zip(net.layers, net.input_shapes(), net.shapes()):
        if layer.type == "linear":
            shapes.append((tb, in_shape[0], int(layer.out)))
        elif layer.type == "conv2d":
            k = int(layer.kernel)
            shapes.append((tb * out_shape[1] * out_shape[2], in_shape[0] * k * k, int(layer.out)))
    return shapes
