"""SpikingJelly 2.0 (``spikingjelly.activation_based``): the network in multi-step mode
(``step_mode='m'``, whole ``[T, B, ...]`` sequences per layer), SpikingJelly's own LIF kernel, and
``functional.reset_net`` before every batch (the module is :class:`.nets.spikingjelly_net.SpikingJellyNet`).

Kernels: SpikingJelly 2.0 has no ``backend=`` argument any more; ``LIFNode`` dispatches by the
tensor's device to a registered op (``torch.ops.sj_lif``): on the CPU a fused time loop with a
hand-written backward pass, on CUDA its Triton / CUDA kernels where they load. The record's mode
names the device; there is one runner, ``spikingjelly``, for both.

Spec mapping:

* ``linear`` / ``conv2d`` / ``maxpool`` / ``flatten`` -> ``layer.Linear`` / ``layer.Conv2d`` /
  ``layer.MaxPool2d`` / ``layer.Flatten`` (PyTorch's layouts: canonical weights load unchanged).
* ``lif`` -> ``neuron.LIFNode(tau = 1 / (1 - beta), decay_input=False, v_threshold=threshold)``:
  ``v <- v - v / tau + I`` is ``beta v + I``. ``if`` -> ``neuron.IFNode``.
* reset ``zero`` -> ``v_reset=0.0``: exactly the canonical zero reset. ``subtract_decayed`` ->
  ``v_reset=None`` (soft reset): exact. ``subtract`` cannot be expressed by SpikingJelly's neurons:
  their soft reset subtracts the threshold in the step that spikes, so the next decay also shrinks
  it (``beta * threshold`` removed instead of ``threshold``). The adapter keeps SpikingJelly's own
  kernel (writing a custom neuron to get the canonical order would no longer benchmark
  SpikingJelly) and declares the deviation; the parity gate proves it against the reference with
  ``reset: subtract_decayed`` and reports its size against ``subtract``.
* ``detach_reset`` -> ``detach_reset`` (both honoured).
* ``recurrent: true`` (``lif``, ``if``) -> ``layer.LinearRecurrentContainer`` (SpikingJelly's recurrent
  container) around the same node in single-step mode, ``rc.weight = [I | V]`` with no bias: the child
  node receives ``I_t + s_{t-1} @ V.T`` before its charge / fire / reset, the spec's order (mapping and
  proof in :func:`.nets.spikingjelly_net.recurrent_node`); canonical ``layers.{i}.recurrent`` =
  ``rc.weight[:, n:]``, the identity block held fixed. ``layer.ElementWiseRecurrentContainer`` is not
  used: it feeds back element-wise (``f(y[t-1], x[t])``), not all-to-all. The reset / surrogate
  mapping and deviations are those of the feed-forward node.
* ``li`` readout -> ``neuron.NonSpikingLIFNode(tau)`` fed ``I / (1 - beta)`` (it integrates
  ``beta v + (1 - beta) x``).
* surrogate: ``arctan`` -> ``surrogate.ATan(k)``, ``sigmoid`` -> ``surrogate.Sigmoid(k)``,
  ``superspike`` slope 1 -> ``surrogate.SuperSpike(1)``, slope 2 -> ``surrogate.SoftSign(2)``,
  ``triangular`` slope 1 -> ``surrogate.PiecewiseQuadratic(1)``: the canonical derivatives. Any other
  runs with ``SuperSpike(1)``, a declared deviation (forward identical, gradients differ).
* spike at exactly the threshold: SpikingJelly fires at ``v >= threshold``, the spec at ``>``; only
  exact ties differ (counted as flips by the parity gate).

Not expressed (skipped): ``reset: none``, ``cuba_lif``, ``learn_beta`` (``ParametricLIFNode`` learns
one decay per layer, the spec one per neuron), ``spike_from: previous``. bfloat16 and float16
run under autocast (its neurons follow the low dtype).
"""

from __future__ import annotations

from ..spec import Case, with_reset, with_surrogate
from .base import Deviation, RunnerInfo
from .torch_common import TorchRunnerBase


class SpikingJellyRunner(TorchRunnerBase):
    name = "spikingjelly"
    framework = "spikingjelly"
    package = "spikingjelly"
    packages = ("torch", "spikingjelly")
    colour = "#2ca02c"
    idiomatic = "tests.benchmarks.idiomatic.spikingjelly_shd"
    nir = "snnbench.interop.frameworks:SPIKINGJELLY"
    neuron_types = frozenset({"lif", "if", "li"})
    resets = frozenset({"subtract", "subtract_decayed", "zero"})
    learn_beta_refusal = "SpikingJelly learns one decay per layer (ParametricLIFNode), the spec one per neuron"
    recurrent_types = frozenset({"lif", "if"})  # layer.LinearRecurrentContainer
    idiomatic_recurrent = "tests.benchmarks.idiomatic.spikingjelly_rec"


    def supports(self, case: Case):
        from .base import Support

        expressed = super().supports(case)
        if not expressed.ok or not self.available().ok:  # the surrogate check below imports SpikingJelly
            return expressed
        from .nets.spikingjelly_net import missing_surrogate

        s = case.network.surrogate
        missing = missing_surrogate(s.name, s.slope)
        if missing:
            from importlib import metadata

            return Support.no(f"SpikingJelly {metadata.version('spikingjelly')} has no {missing} surrogate, which "
                              f"the case's {s.name}(slope {s.slope:g}) needs")
        return expressed

    def make_model(self, case: Case):
        from .nets.spikingjelly_net import SpikingJellyNet

        return SpikingJellyNet(case.network)

    def param_names(self) -> dict[str, str]:
        names = super().param_names()
        for i, layer in enumerate(self.case.network.layers):
            if layer.recurrent:
                names[f"layers.{i}.recurrent"] = f"layers.{i}.rc.weight"
        return names

    def _canonical(self, name: str, tensor):
        """``rc.weight`` is ``[I | V]`` (``[n, 2n]``): the canonical ``V`` is its right block."""
        return super()._canonical(name, tensor[:, tensor.shape[0]:] if name.endswith(".recurrent") else tensor)

    def set_weights(self, weights) -> None:
        import numpy as np

        def full(v):  # V -> [I | V], the container's whole weight
            return np.concatenate([np.eye(len(v), dtype=np.float32), np.asarray(v, np.float32)], axis=1)

        super().set_weights({k: full(v) if k.endswith(".recurrent") else v for k, v in weights.items()})

    def deviations(self, case: Case) -> list[Deviation]:
        from .nets.spikingjelly_net import sj_surrogate

        found = []
        if any(layer.spiking and layer.type == "lif" and layer.reset == "subtract" for layer in case.network.layers):
            found.append(Deviation("soft reset subtracts the threshold before the decay (spec: subtract; "
                                   "SpikingJelly computes subtract_decayed)", _decayed_reset))
        s = case.network.surrogate
        if not sj_surrogate(s.name, s.slope)[1]:
            found.append(Deviation(f"surrogate {s.name}(slope {s.slope:g}) is not a SpikingJelly built-in: "
                                   "SuperSpike(alpha=1) 1/(1+|x|)^2 used", _superspike))
        return found

    def info(self) -> RunnerInfo:
        import torch
        from importlib import metadata

        kernel = "fused CPU loop with hand-written backward" if self.dev.type == "cpu" else "CUDA/Triton kernels"
        return RunnerInfo(framework="spikingjelly", version=metadata.version("spikingjelly"),
                          mode=f"eager; multi-step (step_mode='m') layers, LIFNode via torch.ops.sj_lif ({kernel})",
                          extra={"torch": torch.__version__, "threads": torch.get_num_threads(), **self.precision,
                                 "deviations": [d.text for d in self.deviations(self.case)]})


def _decayed_reset(case: Case) -> Case:
    """The reference with SpikingJelly's soft reset (for IF layers, beta = 1, the two resets agree)."""
    return with_reset(case, "subtract", "subtract_decayed")


def _superspike(case: Case) -> Case:
    return with_surrogate(case, "superspike", 1.0)
