"""The one interface every framework adapter implements.

A runner is created per (case, device) and used in this order by the harness::

    runner = RunnerClass()
    runner.supports(case) -> Support             # may refuse with a reason
    runner.build(case, device, seed)             # build network + optimizer
    runner.set_weights(canonical)                # same initial weights for everyone
    runner.stage(train, test)                    # put the dataset where the framework keeps it
    runner.compile()                             # first-call / JIT cost, measured apart
    runner.train_epoch(epoch) ... runner.evaluate()
    runner.forward(x) / runner.forward_backward(x, y)   # one batch, for parity
    runner.fwd_step(b) / runner.fwdbwd_step(b)          # one batch per call, for timing
    runner.fwd_steps(bs) / runner.fwdbwd_steps(bs)      # K batches dispatched as training does

Array conventions at this boundary are NumPy and batch-major: inputs ``[B, T, C]`` float32,
spikes per spiking layer ``[B, T, N]``, readout membrane ``[B, T, O]``. Work inside a runner stays
on its device; ``barrier()`` waits for it, and the harness calls it before every clock stop.

A runner never imports the harness: it hands the harness things to time (``gemm_floor`` returns
callables) and the harness owns the clock.
"""

from __future__ import annotations

import abc
import importlib
import importlib.util
import os
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np

from ..data.staging import SpikeDataset
from ..spec import Case


@dataclass(frozen=True)
class Support:
    """Whether something is possible, and why not."""

    ok: bool
    reason: str = ""

    @classmethod
    def yes(cls) -> "Support":
        return cls(True, "")

    @classmethod
    def no(cls, reason: str) -> "Support":
        return cls(False, reason)


def package_present(*names: str) -> Support:
    """Whether every package in ``names`` is installed, found without importing it (some frameworks
    do surprising things on import; see :func:`guarded_import`)."""
    for name in names:
        if importlib.util.find_spec(name) is None:
            return Support.no(f"missing package: {name}")
    return Support.yes()


def guarded_import(name: str):
    """Import ``name`` with pip unable to reach an index. Sinabs' and Rockpool's hardware kit
    (``samna`` from PyPI) runs ``pip install --force-reinstall samna`` against an external index when
    imported; offline that hangs until pip's own timeout. With ``PIP_NO_INDEX`` that pip call fails at
    once and the framework carries on without its hardware backend. Call it in worker processes
    (the harness builds runners there), never in the parent at discovery."""
    os.environ["PIP_NO_INDEX"] = "1"
    os.environ["PIP_NO_INPUT"] = "1"
    return importlib.import_module(name)


@dataclass
class ForwardResult:
    """One batch through the network, batch-major NumPy arrays."""

    spikes: list[np.ndarray]  # per spiking layer, [B, T, N]
    readout: np.ndarray  # [B, T, O]
    #: the dtype the spikes (so the membranes they came from) were computed in, before conversion to
    #: float32 NumPy: how a test catches a runner that silently computes in float32 (spec.PRECISION)
    dtype: str = "float32"


@dataclass
class GradResult:
    loss: float
    grads: dict[str, np.ndarray]  # canonical names and layouts


@dataclass
class EpochResult:
    loss: float  # mean training loss over the epoch's batches
    accuracy: float | None = None  # training accuracy over the epoch, where measured
    samples: int = 0


@dataclass
class EvalResult:
    accuracy: float
    loss: float
    samples: int


@dataclass(frozen=True)
class Deviation:
    """A declared difference from the canonical spec, with its proof obligation: ``reference`` turns
    the case into the one this runner really computes (e.g. spikes from ``v_{t-1}``, reset attached),
    and the parity gate requires the reference built from that case to match the runner to the
    normal tolerances. A deviation without such a configuration cannot be declared."""

    text: str
    reference: Callable[[Case], Case]


@dataclass(frozen=True)
class GemmFloor:
    """The workload's essential matrix products alone, in the runner's framework, as callables for
    the harness to time (each returns a device value for ``barrier``).

    ``fwd``: ``x @ W`` per weight layer, ``M = T * B`` rows. ``fwdbwd`` adds the weight gradient
    ``x.T @ g`` of every layer and the input gradient ``g @ W.T`` of all but the first."""

    fwd: Callable[[], Any]
    fwdbwd: Callable[[], Any]
    framework: str


@dataclass
class RunnerInfo:
    """What a record needs to say about how the runner ran."""

    framework: str
    version: str
    mode: str  # e.g. "jit epoch (lax.scan)", "eager", "torch.compile"
    extra: dict[str, Any] = field(default_factory=dict)


class Runner(abc.ABC):
    """Base class of every framework adapter."""

    #: registry name, e.g. "reference", "snntorch"
    name: ClassVar[str] = ""
    #: the framework's package, for the version in records
    framework: ClassVar[str] = ""
    #: neuron layer types this runner can express; other cases are skipped with a reason
    neuron_types: ClassVar[frozenset[str]] = frozenset({"lif", "if", "li", "cuba_lif"})
    #: spike timings (the spec's ``spike_from``) this runner can express
    spike_timings: ClassVar[frozenset[str]] = frozenset({"current"})
    #: resets (the spec's ``reset``) this runner can express, exactly or by a declared deviation
    resets: ClassVar[frozenset[str]] = frozenset({"subtract", "zero", "none"})
    #: why trainable per-neuron decays (``learn_beta``) cannot be expressed; "" where they can
    learn_beta_refusal: ClassVar[str] = ""
    #: neuron types on which this runner expresses ``recurrent: true`` (in the framework's own recurrent
    #: neuron); empty: recurrent layers are skipped with :attr:`recurrent_refusal`
    recurrent_types: ClassVar[frozenset[str]] = frozenset()
    #: why recurrent layers cannot be expressed (e.g. the framework has no recurrent neuron); "" says
    #: only that they are not implemented for this runner
    recurrent_refusal: ClassVar[str] = ""
    #: compute dtypes (the spec's ``dtype``, defined in :data:`snnbench.spec.PRECISION`) this runner implements
    dtypes: ClassVar[frozenset[str]] = frozenset({"float32"})
    #: why the other dtypes are refused; "" says only that they are not implemented
    dtype_refusal: ClassVar[str] = ""
    #: the loss and the class score come from snnbench's shared scoring (``logits_from_readout`` of
    #: :mod:`.torch_common` / :mod:`.reference.model`), which expresses a population-coded readout and
    #: ``loss: count``; a runner that forms its own loss leaves this False and such cases are skipped
    shared_scoring: ClassVar[bool] = False

    # ------------------------------------------------- what the rest of snnbench derives from the registry
    #: distributions whose versions a run's environment records for this runner
    packages: ClassVar[tuple[str, ...]] = ()
    #: its colour in every plot (CSS hex), read from the class's own body (a subclass under another
    #: name does not inherit it); "" hands it one deterministically. A compiled twin takes its eager
    #: twin's colour (drawn hatched or dashed)
    colour: ClassVar[str] = ""
    #: for a compiled runner, the registry name of the same adapter run eagerly; "" for none
    eager_twin: ClassVar[str] = ""
    #: the framework's own idiomatic training loop for the comparison with this adapter, a module run
    #: as ``python -m MODULE [--compile]`` (tests/benchmarks/idiomatic/); "" for none
    idiomatic: ClassVar[str] = ""
    #: the same for the recurrent network (``shd-rec-h128``): the framework's own recurrent training loop
    #: against this adapter, ``python -m MODULE [--compile]``; "" for none
    idiomatic_recurrent: ClassVar[str] = ""
    #: how close the adapter and its idiomatic loop must agree on one batch: (loss, weight gradients),
    #: relative; rounding only, unless the framework's own network folds a scale into its weights
    idiomatic_tolerance: ClassVar[tuple[float, float]] = (1e-6, 1e-5)
    #: a compiled runner: how many graphs it compiles to (training step, evaluation); 0 for eager
    compiled_graphs: ClassVar[int] = 0
    #: the framework's own NIR reader and writer, ``"module:NAME"`` of an
    #: :class:`snnbench.interop.frameworks.NirFramework`; "" where the framework has no NIR support
    nir: ClassVar[str] = ""

    # ------------------------------------------------------------------ availability and support
    @classmethod
    @abc.abstractmethod
    def available(cls) -> Support:
        """Whether the framework can be imported here (no heavy work)."""

    @abc.abstractmethod
    def device_available(self, device: str) -> Support:
        """Whether ``device`` ('cpu', 'gpu', 'tpu' or 'auto') exists for this framework."""

    @classmethod
    def usable_devices(cls) -> list[str]:
        """The devices this runner's framework can use on this machine ('cpu', 'gpu: <name>', ...),
        for ``snnbench env``; imports the framework's array library (call it outside a run)."""
        return ["cpu"]

    def supports_devices(self, device: str, n: int) -> Support:
        """Whether the runner can train data-parallel over ``n`` devices of ``device`` (1: always)."""
        if n == 1:
            return Support.yes()
        return Support.no(f"{self.name} trains on one device; data-parallel training (devices: {n}) is "
                          "implemented in the reference")

    def supports(self, case: Case) -> Support:
        """Whether the runner can express ``case`` exactly (or with a declared deviation). Asked before
        :meth:`available`, so that a case no release could run costs no import: a check that needs the
        framework (its installed release's features) makes it only where ``available()`` holds."""
        if case.spec.dtype not in self.dtypes:
            return Support.no(f"dtype {case.spec.dtype}: {self.dtype_refusal or f'not implemented for {self.name}'}")
        if (case.network.population > 1 or case.spec.loss == "count") and not self.shared_scoring:
            what = (f"a population-coded readout ({case.network.population} neurons per class)"
                    if case.network.population > 1 else "loss: count (a spike-count score)")
            return Support.no(f"{what} is scored by snnbench's shared loss (runners/torch_common.py, "
                              f"runners/jax_common.py); {self.name} forms its own loss and does not implement it")
        for i, layer in enumerate(case.network.layers):
            if layer.is_neuron and layer.type not in self.neuron_types:
                return Support.no(f"layer {i}: {layer.type} neurons are not implemented for {self.name}")
            if layer.spiking and layer.spike_from not in self.spike_timings:
                return Support.no(f"layer {i}: spike_from {layer.spike_from} is not implemented for {self.name}")
            if layer.spiking and layer.reset not in self.resets:
                return Support.no(f"layer {i}: reset {layer.reset} is not implemented for {self.name}")
            if layer.is_neuron and layer.learn_beta and self.learn_beta_refusal:
                return Support.no(f"layer {i}: {self.learn_beta_refusal}")
            if layer.recurrent and layer.type not in self.recurrent_types:
                why = self.recurrent_refusal or f"recurrent {layer.type} layers are not implemented for {self.name}"
                return Support.no(f"layer {i}: {why}")
        return Support.yes()

    # ------------------------------------------------------------------------------ life cycle
    @abc.abstractmethod
    def build(self, case: Case, device: str, seed: int) -> None:
        """Build network and optimizer for ``case`` on ``device``."""

    @abc.abstractmethod
    def info(self) -> RunnerInfo: ...

    @abc.abstractmethod
    def get_weights(self) -> dict[str, np.ndarray]:
        """Parameters as canonical ``dict[str, np.ndarray]`` (see :mod:`snnbench.spec`)."""

    @abc.abstractmethod
    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load canonical parameters; also resets the optimizer state."""

    def weight_dtypes(self) -> list[str]:
        """The dtypes the trainable weights are held in (the optimizer's master copy), for records."""
        return []

    def loss_scaling(self) -> str:
        """How the loss is scaled for the backward pass ("none" unless float16), for records."""
        return "none"

    @abc.abstractmethod
    def forward(self, x: np.ndarray) -> ForwardResult:
        """Run ``x [B, T, C]`` through the network."""

    @abc.abstractmethod
    def forward_backward(self, x: np.ndarray, y: np.ndarray) -> GradResult:
        """Loss and canonical gradients for one batch (no optimizer step)."""

    # -------------------------------------------------------------- timing hooks (device-side)
    @abc.abstractmethod
    def prepare_batch(self, x: np.ndarray, y: np.ndarray) -> Any:
        """Move one batch to the device once, for timing ``fwd_step`` / ``fwdbwd_step``."""

    @abc.abstractmethod
    def fwd_step(self, batch: Any) -> Any:
        """Forward pass on a prepared batch; returns a device value to wait on."""

    @abc.abstractmethod
    def fwdbwd_step(self, batch: Any) -> Any:
        """Forward + backward on a prepared batch; returns a device value to wait on."""

    def prepare_batches(self, xs: np.ndarray, ys: np.ndarray) -> Any:
        """Move ``K`` distinct batches ``xs [K, B, T, C]``, ``ys [K, B]`` to the device once."""
        return [self.prepare_batch(x, y) for x, y in zip(xs, ys)]

    def fwd_steps(self, batches: Any) -> Any:
        """Forward passes over the ``K`` prepared batches, dispatched the way this runner's training
        loop dispatches its steps (a compiled runner overrides this with one program), so that the
        time per step agrees with a training step. Returns a device value to wait on."""
        out = None
        for batch in batches:
            out = self.fwd_step(batch)
        return out

    def fwdbwd_steps(self, batches: Any) -> Any:
        """Forward + backward passes over the ``K`` prepared batches (see :meth:`fwd_steps`)."""
        out = None
        for batch in batches:
            out = self.fwdbwd_step(batch)
        return out

    def steps_reuse_step(self, batches: Any) -> bool:
        """Whether :meth:`fwd_steps` / :meth:`fwdbwd_steps` on ``batches`` only call :meth:`fwd_step` /
        :meth:`fwdbwd_step` in a loop (True here): the per-call timing has then warmed up everything the
        per-step timing runs, and its warm-up call (K steps) is skipped. A runner that runs the K
        batches as a program of their own (a ``lax.scan``) says False for those batches."""
        return True

    def precompile_steps(self, batches: Any, which: str) -> bool:
        """Compile what :meth:`fwd_steps` (``which`` "fwd") or :meth:`fwdbwd_steps` ("fwdbwd") runs on
        ``batches`` ahead of time, without running it; True when done. The per-step timing then takes
        no warm-up call: a JIT's warm-up would run all K steps only to compile them (at the layer
        sweep's n 2048, 8 steps of 0.5 s for a 0.3 s compile). False here: the policy's warm-up calls."""
        return False

    # ------------------------------------------------------------------------------- training
    @abc.abstractmethod
    def stage(self, train: SpikeDataset, test: SpikeDataset) -> dict[str, Any]:
        """Keep the dataset where the framework's users keep it; returns facts (bytes staged...)."""

    def compile(self) -> float | None:
        """Make the training step and the evaluation ready to run, outside the epochs' clock; returns
        the seconds that took, or None for an eager runner. The same meaning for every runner: the
        compile cost of the first call of the training step and of evaluation, without their
        execution (``info().extra["compile_includes"]`` says how the runner measured it)."""
        return None

    def deviations(self, case: Case) -> list[Deviation]:
        """How this runner departs from the canonical spec on ``case``; [] when it computes it exactly."""
        return []

    @abc.abstractmethod
    def train_epoch(self, epoch: int) -> EpochResult:
        """One pass over the training split (shuffled with a per-epoch seed)."""

    @abc.abstractmethod
    def evaluate(self) -> EvalResult:
        """Accuracy and loss over the whole test split."""

    # ------------------------------------------------------------------------------- device
    @abc.abstractmethod
    def barrier(self, value: Any = None) -> None:
        """Block until all queued device work (and ``value``, if given) is done."""

    def evaluate_at(self, data: SpikeDataset) -> EvalResult:
        """Accuracy on ``data``, whose sequences may be longer than the case's, with the network in
        its step-by-step (inference) form. Runners that cannot raise ``NotImplementedError``."""
        raise NotImplementedError(f"{self.name} has no step-by-step evaluation at other lengths")

    def serial_forward(self, x: np.ndarray) -> ForwardResult | None:
        """Like :meth:`forward`, with parallel-in-time neurons in their step-by-step form; None
        where the runner has no such neurons."""
        return None

    def gemm_floor(self) -> GemmFloor | None:
        """The workload's matrix products alone (:class:`GemmFloor`), or None where not implemented."""
        return None

    def device_label(self) -> str:
        """The device this runner runs on after :meth:`build`, as records name it: ``cpu``, or the
        accelerator's kind and name (``gpu: NVIDIA H200``); never 'auto'."""
        return "cpu"

    #: where :meth:`peak_memory_bytes` comes from, for records
    device_memory_source: ClassVar[str] = ""

    def reset_peak_memory(self) -> bool:
        """Start a new device-memory peak. False where the framework cannot reset it (the harness then
        measures each phase in its own process); True where it did, or where there is nothing to
        reset because the device's memory is the host's."""
        return True

    def peak_memory_bytes(self) -> int | None:
        """Peak device memory since the last reset; None where the device's memory is the host's."""
        return None
