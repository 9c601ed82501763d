"""Plain PyTorch: the canonical spec written by hand, the baseline a PyTorch user would write,
run eagerly (``torch``) and under ``torch.compile(fullgraph=True)`` (``torch-compile``: one graph
per mode, a graph break is an error; compile time recorded apart as ``compile_s``). The module is
:class:`.nets.torch_canonical.CanonicalSNN`.

Parallel-in-time neurons (long-sequence suite) use :mod:`.torchmath.parallel`: PyTorch has no
associative scan, so ``lif_noreset`` with ``method: assoc`` and DSN's parallel form run as a chunked
scan (declared in the mode).

Spec mapping: every field is expressed exactly (the module *is* the canonical equations of
:mod:`snnbench.spec` in PyTorch, ``spike_from: previous`` included). ``linear`` is ``nn.Linear`` applied to all ``T * B`` rows at once,
``conv2d`` is ``nn.Conv2d`` and ``maxpool`` is ``F.max_pool2d`` over all ``T * B`` images at once;
neurons loop over time in Python; the surrogate is one ``torch.autograd.Function`` with the
canonical formulas; a recurrent layer (``recurrent: true``) adds ``s_{t-1} @ V.T`` inside its time
loop (:mod:`.torchmath.recurrent`). Not expressed: on-device shift augmentation (skipped with that reason).
"""

from __future__ import annotations

from ..spec import PARALLEL_TYPES, RECURRENT_TYPES, RESETS, Case, weight_shapes
from .base import RunnerInfo
from .torch_common import CompiledTorch, TorchRunnerBase


class TorchRunner(TorchRunnerBase):
    name = "torch"
    colour = "#d62728"
    framework = "torch"
    mode = "eager; per layer one GEMM over T*B rows + Python loop over time"
    neuron_types = frozenset({"lif", "if", "li", "cuba_lif"} | set(PARALLEL_TYPES))
    recurrent_types = frozenset(RECURRENT_TYPES)  # V s_{t-1} in the time loop (torchmath.recurrent)
    spike_timings = frozenset({"current", "previous"})
    resets = frozenset(RESETS)

    def make_model(self, case: Case):
        from .nets.torch_canonical import CanonicalSNN

        return CanonicalSNN(case.network)

    def param_names(self) -> dict[str, str]:
        return {k: k for k in weight_shapes(self.case.network)}  # module paths are the canonical names

    def evaluate_at(self, data):
        import torch

        from .base import EvalResult
        from .torch_common import logits_from_readout

        if any(layer.type in ("psn", "masked_psn") for layer in self.case.network.layers):
            raise NotImplementedError("PSN weights are [T, T]: the network only runs at its training length")
        self.model.eval()
        self.model.serial = True
        correct, nll = 0, 0.0
        try:
            with torch.no_grad():
                for x, y, n_valid in self._batches(data, self._in_order(data)):
                    with self.autocast():
                        readout = self.model(x)[1]
                    logits = logits_from_readout(readout.float(), self.case.spec.loss,
                                                  population=self.case.network.population)[:n_valid]
                    nll += float(torch.nn.functional.cross_entropy(logits, y[:n_valid], reduction="sum"))
                    correct += int((logits.argmax(-1) == y[:n_valid]).sum())
        finally:
            self.model.serial = False
        return EvalResult(accuracy=correct / len(data), loss=nll / len(data), samples=len(data))

    def serial_forward(self, x):
        if not any(layer.type in ("lif_noreset", "dsn") for layer in self.case.network.layers):
            return None
        self.model.serial = True
        try:
            return self.forward(x)
        finally:
            self.model.serial = False

    def info(self) -> RunnerInfo:
        import torch

        return RunnerInfo(framework="torch", version=torch.__version__, mode=self.mode,
                          extra={"threads": torch.get_num_threads(), "device": str(self.dev), **self.precision})


class TorchCompileRunner(CompiledTorch, TorchRunner):
    """The ``torch`` runner's module under ``torch.compile(fullgraph=True)`` (see :class:`CompiledTorch`)."""

    name = "torch-compile"
    eager_twin = "torch"
    mode = "torch.compile(fullgraph=True, dynamic=False), inductor: one graph for the training step, one for evaluation"
