"""snnTorch 1.0's parallel-in-time neurons: ``snntorch-parallel`` (``snn.LeakyParallel``) and
``snntorch-stateleaky`` (``snn.StateLeaky``), runners of the long-sequence cases made of ``linear`` +
``lif_noreset`` pairs (the spikes of the last layer are the output). What each computes, read in its
source (``snntorch/_neurons/leakyparallel.py``, ``stateleaky.py``):

* ``LeakyParallel(input_size, hidden_size, beta, bias, threshold, spike_grad)`` is an
  ``nn.RNN(nonlinearity="relu")`` whose recurrent matrix is ``diag(beta)`` (frozen unless ``learn_beta``):
  ``v_t = relu(W_ih x_t + b_ih + b_hh + beta v_{t-1})``, ``s_t = H(v_t - threshold)``. It has no reset and
  keeps one state, the membrane, **clipped at zero each step** by the RNN's ReLU; the canonical
  ``lif_noreset`` is not clipped. The input ``linear`` is fused into it (``W_ih``, ``b_ih`` are the canonical
  weight and bias, ``b_hh`` is held at zero). On the CPU and under cuDNN the RNN is a sequential loop in
  ATen / a fused kernel, not a parallel scan.
* ``StateLeaky(beta, channels, threshold, spike_grad, output=True)`` convolves the input current causally
  (``F.conv1d``, depthwise, the full ``T``-tap kernel ``exp(-t / tau)``, ``tau = 1 / (1 - beta)``): the
  no-reset LIF, no state kept between calls, with the per-step decay ``exp(-(1 - beta))``. The spec's decay
  ``beta`` is therefore passed as ``1 + ln(beta)`` (e.g. 0.9 -> 0.8946). O(T^2) work per neuron.

Spec mapping: ``linear`` -> the fused ``LeakyParallel`` input / ``nn.Linear``; ``lif_noreset`` (any
``method``: the method names how the reference evaluates the same function) -> the neuron; surrogates as
the ``snntorch`` runner maps them (:func:`.nets.snntorch_net.spike_grad`). Declared deviation
(``snntorch-parallel``): the membrane clipped at zero, proven by the reference with ``relu: true``.
Not expressed (skipped with the reason): any other neuron (LIF with reset, PSN, DSN, the ``li`` readout),
convolutions, ``learn_beta``, dtypes other than float32; ``snntorch-stateleaky`` also ``relu: true``.
"""

from __future__ import annotations

from ..spec import Case, with_spiking_layers
from .base import Deviation, RunnerInfo, Support
from .torch_common import TorchRunnerBase


class _SnnTorchParallelBase(TorchRunnerBase):
    framework = "snntorch"
    package = "snntorch"
    neuron_types = frozenset({"lif_noreset"})
    dtypes = frozenset({"float32"})
    dtype_refusal = "snnTorch's parallel neurons hold beta and threshold as float32 buffers (not measured at low precision)"
    learn_beta_refusal = "trainable decays of the parallel neurons are not mapped (the reference's lif_noreset has none)"
    mode = ""

    def supports(self, case: Case) -> Support:
        layers = case.network.layers
        for i, layer in enumerate(layers):
            if layer.type not in ("linear", "lif_noreset"):
                return Support.no(f"layer {i}: {layer.type} is not expressed by {self.name} (only linear + "
                                  "lif_noreset pairs: its neuron has no reset and no readout)")
        return super().supports(case)

    def info(self) -> RunnerInfo:
        import snntorch
        import torch

        return RunnerInfo(framework="snntorch", version=snntorch.__version__, mode=self.mode,
                          extra={"torch": torch.__version__, "threads": torch.get_num_threads(), **self.precision,
                                 "deviations": [d.text for d in self.deviations(self.case)]})


class SnnTorchLeakyParallelRunner(_SnnTorchParallelBase):
    """``snn.LeakyParallel``: an ``nn.RNN`` with ReLU and a diagonal recurrence (see the module docstring)."""

    name = "snntorch-parallel"
    mode = ("snn.LeakyParallel per linear + lif_noreset pair: nn.RNN(relu) with diag(beta) recurrence over the "
            "whole sequence (ATen's RNN loop on the CPU, cuDNN on CUDA)")

    def make_model(self, case: Case):
        from .nets.snntorch_parallel_net import LeakyParallelNet

        return LeakyParallelNet(case.network)

    def param_names(self) -> dict[str, str]:
        names = {}
        for i, layer in enumerate(self.case.network.layers):
            if layer.type == "lif_noreset":
                names[f"layers.{i - 1}.weight"] = f"cells.{i}.rnn.weight_ih_l0"
                if self.case.network.layers[i - 1].bias:
                    names[f"layers.{i - 1}.bias"] = f"cells.{i}.rnn.bias_ih_l0"
        return names

    def deviations(self, case: Case) -> list[Deviation]:
        if any(layer.type == "lif_noreset" and not layer.relu for layer in case.network.layers):
            return [Deviation("membrane clipped at 0 each step (nn.RNN's ReLU; spec: lif_noreset unclipped)",
                              _membrane_clipped)]
        return []


class SnnTorchStateLeakyRunner(_SnnTorchParallelBase):
    """``snn.StateLeaky``: the no-reset membrane as a causal convolution (see the module docstring)."""

    name = "snntorch-stateleaky"
    mode = ("nn.Linear over T*B rows + snn.StateLeaky: depthwise causal conv1d with the full T-tap kernel "
            "exp(-t/tau), beta given as 1 + ln(beta)")

    def supports(self, case: Case) -> Support:
        for i, layer in enumerate(case.network.layers):
            if layer.type == "lif_noreset" and layer.relu:
                return Support.no(f"layer {i}: StateLeaky's membrane is a convolution and cannot be clipped at 0 "
                                  "(relu: true)")
        return super().supports(case)

    def make_model(self, case: Case):
        from .nets.snntorch_parallel_net import StateLeakyNet

        return StateLeakyNet(case.network)


def _membrane_clipped(case: Case) -> Case:
    return with_spiking_layers(case, relu=True)
