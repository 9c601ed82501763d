"""snnTorch 1.0: ``snn.Leaky`` hidden layers and an ``snn.Leaky(reset_mechanism="none")`` readout,
stepped one time step at a time as snnTorch's tutorials do (``nn.Linear`` on ``x[t]``, then the
neuron with its membrane carried by the caller).

Spec mapping:

* ``lif`` -> ``snn.Leaky(beta, threshold, spike_grad, reset_mechanism, learn_beta)``; snnTorch's
  reset is driven by the previous step's membrane, which is the canonical order.
* ``if`` -> ``snn.Leaky(beta=1)``; ``cuba_lif`` -> ``snn.Synaptic(alpha, beta)``.
* ``li`` -> ``snn.Leaky(beta, reset_mechanism="none")``, its membrane is the readout.
* surrogate: ``arctan`` -> ``surrogate.atan(alpha=slope)``, ``superspike`` ->
  ``surrogate.fast_sigmoid(slope)``, ``sigmoid`` -> ``surrogate.sigmoid(slope)``,
  ``straight_through`` -> ``surrogate.straight_through_estimator()``: the same functions as the
  canonical ones. ``triangular`` and ``boxcar`` differ from snnTorch's own, so they go through
  ``surrogate.custom_surrogate`` with the canonical formula.
* ``learn_beta`` -> a per-neuron ``beta`` tensor with ``learn_beta=True`` (``[C, H, W]`` after a
  convolution).
* ``conv2d`` -> ``nn.Conv2d``, ``maxpool`` -> ``nn.MaxPool2d``, ``flatten`` -> ``nn.Flatten``, each
  applied per time step to ``[B, C, H, W]`` as in snnTorch's convolutional tutorials.
* ``recurrent: true`` -> ``snn.RLeaky`` (``lif``, ``if``) / ``snn.RSynaptic`` (``cuba_lif``) with
  ``all_to_all=True, linear_features=n``: the recurrence is an ``nn.Linear(n, n)`` applied to the
  previous step's spikes, its ``weight`` the canonical ``V`` (``layers.{i}.recurrent`` <->
  ``layers.{i}.recurrent.weight``, both ``[out, in]``). snnTorch gives that linear a bias; the spec's
  recurrence has none, so the bias is zeroed and frozen. Read in snnTorch 1.0's source: the membrane is
  ``beta * mem + input + recurrent(spk) - reset * threshold`` (``RSynaptic``: the recurrent term in the
  synaptic current), the reset is ``H(mem_{t-1} - threshold)`` detached (the canonical order), and the
  recurrent spike is *not* detached (gradient through ``V s_{t-1}``): the spec exactly, for subtract
  and none. Its reset-to-zero differs (``RLeaky`` zeroes the whole new membrane, input included:
  ``(1 - r) (beta mem + I + V s)``), so a recurrent ``reset: zero`` is skipped, as is a recurrent
  layer after a convolution (snnTorch's all-to-all recurrence there is a ``Conv2d``, not a dense ``V``).

Deviation: snnTorch always detaches the reset, so ``detach_reset: false`` cannot be expressed; such
a case runs detached, declared as the reference with ``detach_reset: true``, which the parity gate
checks. Not expressed (skipped): ``spike_from: previous``, dtypes other than float32.

The module is :class:`.nets.snntorch_net.SnnTorchNet`. ``snntorch-compile`` runs the same module
under ``torch.compile(fullgraph=True)`` (:class:`.torch_common.CompiledTorch`): the time loop
unrolls into one graph per mode, no breaks.
"""

from __future__ import annotations

from ..spec import Case, with_spiking_layers
from .base import Deviation, RunnerInfo, Support
from .torch_common import CompiledTorch, TorchRunnerBase


class SnnTorchRunner(TorchRunnerBase):
    name = "snntorch"
    # measured (tests/test_precision.py): snnTorch's Leaky holds beta, threshold and its membrane as float32
    # buffers, so under autocast the membrane and spikes promote back to float32
    dtypes = frozenset({"float32"})
    dtype_refusal = ("under torch.autocast snnTorch's neurons compute in float32 (beta, threshold and the membrane "
                     "are float32 buffers; the spikes come out float32), so it would not be mixed precision")
    framework = "snntorch"
    package = "snntorch"
    packages = ("torch", "snntorch")
    colour = "#ff7f0e"
    idiomatic = "tests.benchmarks.idiomatic.snntorch_shd"
    idiomatic_recurrent = "tests.benchmarks.idiomatic.snntorch_rec_shd"
    nir = "snnbench.interop.frameworks:SNNTORCH"

    recurrent_types = frozenset({"lif", "if", "cuba_lif"})  # snn.RLeaky / snn.RSynaptic (all_to_all)

    def supports(self, case: Case) -> Support:
        net = case.network
        for i, (layer, shape) in enumerate(zip(net.layers, net.shapes())):
            if layer.recurrent and layer.reset == "zero":
                return Support.no(f"layer {i}: snnTorch's recurrent neurons reset to zero after the integration "
                                  "((1 - r) (beta mem + I + V s): the step's input is dropped too), not the spec's zero reset")
            if layer.recurrent and len(shape) != 1:
                return Support.no(f"layer {i}: snnTorch's all-to-all recurrence over an image is a Conv2d "
                                  "(conv2d_channels, kernel_size), not the spec's dense V")
        return super().supports(case)

    def make_model(self, case: Case):
        from .nets.snntorch_net import SnnTorchNet

        return SnnTorchNet(case.network)

    def param_names(self) -> dict[str, str]:
        names = super().param_names()
        for i, layer in enumerate(self.case.network.layers):
            if layer.is_neuron and layer.learn_beta:
                names[f"layers.{i}.beta"] = f"layers.{i}.beta"
            if layer.recurrent:  # snnTorch's recurrent nn.Linear(n, n); its bias is zeroed and frozen
                names[f"layers.{i}.recurrent"] = f"layers.{i}.recurrent.weight"
        return names

    def deviations(self, case: Case) -> list[Deviation]:
        if any(layer.spiking and not layer.detach_reset for layer in case.network.layers):
            return [Deviation("reset always detached (spec: detach_reset false)", _reset_detached)]
        return []

    def info(self) -> RunnerInfo:
        import snntorch
        import torch

        return RunnerInfo(framework="snntorch", version=snntorch.__version__,
                          mode="eager; nn.Linear + snn.Leaky stepped per time step"
                               + ("; recurrent layers: snn.RLeaky / snn.RSynaptic (all_to_all)"
                                  if any(layer.recurrent for layer in self.case.network.layers) else ""),
                          extra={"torch": torch.__version__, "threads": torch.get_num_threads(), **self.precision,
                                 "deviations": [d.text for d in self.deviations(self.case)]})


class SnnTorchCompileRunner(CompiledTorch, SnnTorchRunner):
    """The ``snntorch`` runner's network under ``torch.compile`` (compile time recorded apart)."""

    name = "snntorch-compile"
    eager_twin = "snntorch"
    mode = ("torch.compile(fullgraph=True, dynamic=False), inductor, of nn.Linear + snn.Leaky stepped per time "
            "step: graphs for the training step and for evaluation, one per form of the neurons' kept state")
    # snnTorch's neurons keep their last state on the module, and dynamo guards on it: the first call of each
    # mode (state not yet made) and the calls after the other mode (requires_grad and rank of the kept spikes
    # differ) are graphs of their own. Counted by dynamo on shd (T 32, B 32): training 1st, 2nd, evaluation
    # 1st, 2nd, training after evaluation.
    compiled_graphs = 5

    def supports(self, case: Case) -> Support:
        # Measured (parity gate, conv net, T 8): forward identical, but inductor's backward of the
        # per-step nn.MaxPool2d sends tied maxima's gradient elsewhere than eager PyTorch's
        # first-maximum rule (conv gradients: cosine 0.9985, norm error 10%). Not the spec's
        # semantics, and no reference configuration reproduces it, so it is not run.
        if any(layer.type == "maxpool" for layer in case.network.layers):
            return Support.no("max pooling under torch.compile does not follow PyTorch's gradient rule for tied "
                              "maxima in snnTorch's per-step layout (parity: conv grad cosine 0.9985)")
        return super().supports(case)


def _reset_detached(case: Case) -> Case:
    return with_spiking_layers(case, detach_reset=True)
