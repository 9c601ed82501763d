"""Plain PyTorch: the canonical spec written by hand, the baseline a PyTorch user would write,
run eagerly (``torch``) and under ``torch.compile`` (``torch-compile``, its compile time recorded
apart as ``compile_s``).

Parallel-in-time neurons (long-sequence suite) use :mod:`.torchmath.parallel`: PyTorch has no
associative scan, so ``lif_noreset`` with ``method: assoc`` and DSN's parallel form run as a chunked
scan (declared in the mode).

Spec mapping: every field is expressed exactly (this file *is* the canonical equations of
:mod:`snnbench.spec` in PyTorch). ``linear`` is ``nn.Linear`` applied to all ``T * B`` rows at once,
``conv2d`` is ``nn.Conv2d`` and ``maxpool`` is ``F.max_pool2d`` over all ``T * B`` images at once;
neurons loop over time in Python; the surrogate is one ``torch.autograd.Function`` with the
canonical formulas. Not expressed: dtypes other than float32 and on-device shift augmentation
(skipped with that reason).
"""

from __future__ import annotations

import numpy as np

from ..spec import PARALLEL_TYPES, Case, NetworkSpec, weight_shapes
from .base import RunnerInfo
from .torch_common import TorchRunnerBase, conv2d_module, spike


def _lif_sequence(current, beta, threshold: float, reset: str, detach: bool, surrogate: tuple[str, float]):
    """Canonical LIF over ``current [T, B, N]``; returns spikes ``[T, B, N]``."""
    import torch

    v = torch.zeros_like(current[0])
    s = torch.zeros_like(v)
    out = []
    for i_t in current:
        r = s.detach() if detach else s
        if reset == "subtract":
            v = beta * v + i_t - threshold * r
        elif reset == "zero":
            v = beta * (1.0 - r) * v + i_t
        else:
            v = beta * v + i_t
        s = spike(v - threshold, *surrogate)
        out.append(s)
    return torch.stack(out)


def _leaky_sequence(current, beta):
    """``v_t = beta * v_{t-1} + I_t`` over ``current [T, B, N]``; returns ``v [T, B, N]``."""
    from .torchmath.parallel import lif_noreset_loop

    return lif_noreset_loop(current, beta)


def build_canonical_module(net: NetworkSpec):
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Decay(nn.Module):
        """Holds a neuron layer's decay: a trainable per-neuron parameter or a constant."""

        def __init__(self, value: float, size: int, trainable: bool):
            super().__init__()
            if trainable:
                self.beta = nn.Parameter(torch.full((size,), float(value)))
            else:
                self.value = float(value)

        def forward(self):
            return self.beta.clamp(0.0, 1.0) if hasattr(self, "beta") else self.value

    shapes = weight_shapes(net)

    class ParallelNeuron(nn.Module):
        """Parameters of a parallel-in-time neuron layer, named as the canonical weights."""

        def __init__(self, index: int):
            super().__init__()
            for key, shape in shapes.items():
                _, i, kind = key.split(".")
                if int(i) == index:
                    self.register_parameter(kind, nn.Parameter(torch.zeros(shape)))

    class CanonicalSNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.spec = net
            self.surrogate = (net.surrogate.name, net.surrogate.slope)
            self.serial = False  # parallel-in-time neurons: use their step-by-step form
            self.in_shapes = net.input_shapes()
            layers = []
            for i, (layer, n) in enumerate(zip(net.layers, net.sizes())):
                if layer.type == "linear":
                    layers.append(nn.Linear(self.in_shapes[i][0], n, bias=layer.bias))
                elif layer.type == "conv2d":
                    layers.append(conv2d_module(layer, self.in_shapes[i][0]))
                elif layer.type in ("maxpool", "flatten"):
                    layers.append(nn.Identity())  # stateless: applied in forward
                elif layer.type in PARALLEL_TYPES:
                    layers.append(ParallelNeuron(i))
                else:
                    layers.append(Decay(layer.decay, n, layer.learn_beta))
            self.layers = nn.ModuleList(layers)

        def parallel_neuron(self, layer, module, h):
            from .torchmath import parallel as P

            name, slope = self.surrogate
            if layer.type == "lif_noreset":
                method = "scan" if self.serial else layer.method
                fn = {"scan": P.lif_noreset_loop, "assoc": P.lif_noreset_chunked, "fft": P.lif_noreset_fft}[method]
                return spike(fn(h, layer.beta) - layer.threshold, name, slope)
            if layer.type == "psn":
                return P.psn(h, module.psn_weight, module.psn_bias, name, slope)[0]
            if layer.type == "masked_psn":
                return P.masked_psn(h, module.psn_weight, module.psn_bias, layer.k, name, slope)[0]
            if layer.type == "sliding_psn":
                return P.sliding_psn(h, module.taps, module.tap_bias, name, slope)[0]
            fn = P.dsn_serial if self.serial else P.dsn_parallel
            return fn(h, module.conv_weight, module.conv_bias, layer.tau, layer.levels, name, slope)[0]

        def forward(self, x):
            assert x.dim() == 3 and x.shape[-1] == self.spec.inputs, f"expected [T, B, C], got {tuple(x.shape)}"
            h, spikes = x, []
            T, B = x.shape[:2]
            for layer, module, in_shape in zip(self.spec.layers, self.layers, self.in_shapes):
                if layer.type == "linear":
                    h = module(h)  # one GEMM over all T * B rows
                elif layer.type == "conv2d":  # all T * B images at once, flat [T, B, n] between layers
                    h = module(h.reshape(T * B, *in_shape)).reshape(T, B, -1)
                elif layer.type == "maxpool":
                    k, stride = int(layer.kernel), int(layer.stride)
                    h = F.max_pool2d(h.reshape(T * B, *in_shape), k, stride).reshape(T, B, -1)
                elif layer.type == "flatten":
                    pass
                elif layer.type == "li":
                    return spikes, _leaky_sequence(h, module())
                elif layer.type in PARALLEL_TYPES:
                    h = self.parallel_neuron(layer, module, h)
                    spikes.append(h)
                else:
                    if layer.type == "cuba_lif":
                        h = _leaky_sequence(h, layer.alpha)
                    h = _lif_sequence(h, module(), layer.threshold, layer.reset, layer.detach_reset, self.surrogate)
                    spikes.append(h)
            return spikes, spikes[-1]  # no LI readout: the last spike train is the output

    return CanonicalSNN()


class TorchRunner(TorchRunnerBase):
    name = "torch"
    framework = "torch"
    mode = "eager; per layer one GEMM over T*B rows + Python loop over time"
    neuron_types = frozenset({"lif", "if", "li", "cuba_lif"} | set(PARALLEL_TYPES))

    def make_model(self, case: Case):
        return build_canonical_module(case.network)

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
                for x, y, n_valid in self._batches(data, np.arange(len(data)), drop_last=False):
                    logits = logits_from_readout(self.model(x)[1], self.case.spec.loss)[:n_valid]
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
                          extra={"threads": torch.get_num_threads(), "device": str(self.dev)})


class TorchCompileRunner(TorchRunner):
    name = "torch-compile"
    mode = "torch.compile (inductor) of the eager model; compile measured on the first fwd+bwd and fwd"

    def wrap_model(self, model):
        import torch

        return torch.compile(model, dynamic=False)

    def _ensure_compiled(self, batch) -> None:
        """First forward+backward and no-grad forward: where torch.compile traces and compiles."""
        import time

        if getattr(self, "_compile_s", None) is None:
            t0 = time.perf_counter()
            self.fwdbwd_step(batch)
            self.barrier(self.fwd_step(batch))
            self.model.zero_grad(set_to_none=True)
            self._compile_s = time.perf_counter() - t0

    def prepare_batch(self, x, y):
        # The one-batch timings come first: compile here so that no warm-up call is a compile.
        batch = super().prepare_batch(x, y)
        self._ensure_compiled(batch)
        return batch

    def compile(self) -> float:
        from ..data.staging import unpack

        B = self.case.spec.batch
        self._ensure_compiled(self._to_device(unpack(self.train.packed[:B]), self.train.labels[:B]))
        return self._compile_s
