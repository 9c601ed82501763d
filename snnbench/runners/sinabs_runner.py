"""Sinabs 3 (SynSense): ``sinabs.layers.LIF`` / ``IAF`` with ``SingleSpike`` and an ``ExpLeak``
readout, batch-major ``[B, T, ...]`` as Sinabs expects, every layer's state reset before every batch
(the module is :class:`.nets.sinabs_net.SinabsNet`). Runs on the CPU and, as Sinabs does, on CUDA
through PyTorch; the EXODUS CUDA kernels (``sinabs-exodus``) are a separate package, not used.

Spec mapping (exact, checked by the parity gate):

* ``lif`` -> ``LIF(tau_mem = -1 / ln(beta), norm_input=False, spike_fn=SingleSpike)``: Sinabs decays
  by ``alpha = exp(-1 / tau_mem)`` = beta and, without ``norm_input``, adds the current unscaled.
  ``tau_mem`` (trainable in Sinabs by default) and the threshold are frozen: the spec's decays are
  constants. ``if`` -> ``IAF``. ``li`` -> ``ExpLeak(tau_mem)``, whose membrane is the readout.
* reset: through Sinabs' ``reset_fn`` hook (:class:`.nets.sinabs_net.CanonicalReset`). Sinabs resets
  in the step that spikes, before the next decay, so the canonical ``subtract`` subtracts
  ``threshold / beta`` (``MembraneSubtract``'s own value would give ``subtract_decayed``); ``zero``
  multiplies by ``1 - s``. The spike is detached when the spec says so (``MembraneSubtract`` never
  detaches, ``MembraneReset`` always does).
* surrogate: Sinabs' ``surrogate_grad_fn`` hook with the canonical formula (Sinabs' own
  ``SingleExponential`` / ``PeriodicExponential`` are none of the spec's).
* spike at exactly the threshold: Sinabs fires at ``v >= threshold``, the spec at ``>``; only exact
  ties differ (counted as flips by the parity gate). ``SingleSpike`` caps a step at one spike
  (Sinabs' default ``MultiSpike`` emits ``floor(v / threshold)``).

* ``recurrent: true`` (``lif``, ``if``) -> Sinabs' ``LIFRecurrent`` / ``IAFRecurrent`` with a bias-free
  ``nn.Linear(n, n)`` as ``rec_connect``: Sinabs adds ``rec_connect(s_t)`` to step ``t + 1``'s input, the
  spec's ``V s_{t-1}``, exact (canonical ``layers.{i}.recurrent`` <-> ``layers.{i}.rec_connect.weight``,
  both ``[out, in]``). Sinabs steps its recurrent layers through time in Python.

Not expressed (skipped): ``reset: none``, ``cuba_lif`` (Sinabs' ``tau_syn`` filters the input
before the membrane, scaled differently), ``learn_beta``, ``spike_from: previous``, dtypes other
than float32.
"""

from __future__ import annotations

from ..spec import Case
from .base import RunnerInfo, Support, package_present
from .torch_common import TorchRunnerBase


class SinabsRunner(TorchRunnerBase):
    name = "sinabs"
    framework = "sinabs"
    package = "sinabs"
    packages = ("torch", "sinabs")
    colour = "#17becf"
    idiomatic = "tests.benchmarks.idiomatic.sinabs_shd"
    nir = "snnbench.interop.frameworks:SINABS"
    batch_major = True
    neuron_types = frozenset({"lif", "if", "li"})
    resets = frozenset({"subtract", "subtract_decayed", "zero"})
    learn_beta_refusal = "trainable decays are not mapped to Sinabs"
    recurrent_types = frozenset({"lif", "if"})  # sinabs.layers.LIFRecurrent / IAFRecurrent
    idiomatic_recurrent = "tests.benchmarks.idiomatic.sinabs_rec"
    dtypes = frozenset({"float32"})  # measured: tests/test_precision.py
    dtype_refusal = ("under torch.autocast Sinabs' neurons compute in float32 (tau_mem, spike_threshold and v_mem are "
                     "float32; the spikes come out float32), so it would not be mixed precision")

    @classmethod
    def available(cls) -> Support:
        # found, not imported: importing Sinabs may import samna (see base.guarded_import)
        return package_present("torch", "sinabs")


    def supports(self, case: Case) -> Support:
        net = case.network
        for i, (layer, shape) in enumerate(zip(net.layers, net.shapes())):
            if layer.recurrent and len(shape) != 1:
                return Support.no(f"layer {i}: a recurrent layer over an image is not mapped to Sinabs (its "
                                  "rec_connect would need a flatten before the dense V; only vector layers are)")
        return super().supports(case)

    def make_model(self, case: Case):
        from .nets.sinabs_net import SinabsNet

        return SinabsNet(case.network)

    def param_names(self) -> dict[str, str]:
        names = super().param_names()
        for i, layer in enumerate(self.case.network.layers):
            if layer.recurrent:  # LIFRecurrent's rec_connect, a bias-free nn.Linear(n, n)
                names[f"layers.{i}.recurrent"] = f"layers.{i}.rec_connect.weight"
        return names

    def info(self) -> RunnerInfo:
        from importlib import metadata

        import torch

        return RunnerInfo(framework="sinabs", version=metadata.version("sinabs"),
                          mode="eager; batch-major nn.Linear + sinabs.layers.LIF (SingleSpike) over [B,T,C]"
                               + ("; recurrent layers: sinabs.layers.LIFRecurrent / IAFRecurrent"
                                  if any(layer.recurrent for layer in self.case.network.layers) else ""),
                          extra={"torch": torch.__version__, "threads": torch.get_num_threads(), **self.precision})
