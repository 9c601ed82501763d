"""The reference runner: JAX + Haiku + optax, a whole training epoch as one compiled program (the
machinery is :class:`..jax_common.JaxRunnerBase`); Haiku modules over the pure neuron functions of
:mod:`.neurons`."""

from __future__ import annotations

import numpy as np

from ...data.staging import SpikeDataset
from ...spec import DTYPES, RECURRENT_TYPES, RESETS, Case
from ..base import EvalResult, ForwardResult, RunnerInfo
from ..jax_common import JaxRunnerBase, unpack_time_major


class ReferenceRunner(JaxRunnerBase):
    """The suite's yardstick: Haiku modules over the pure neuron functions of :mod:`.neurons`."""

    name = "reference"
    packages = ("jax", "jaxlib", "dm-haiku", "optax", "jmp")
    colour = "#3b3b3b"
    requires = ("jax", "optax", "jmp", "haiku")
    neuron_types = frozenset({"lif", "if", "li", "cuba_lif", "lif_noreset", "psn", "masked_psn", "sliding_psn", "dsn"})
    spike_timings = frozenset({"current", "previous"})
    resets = frozenset(RESETS)
    recurrent_types = frozenset(RECURRENT_TYPES)  # neurons.lif_recurrent: V s_{t-1} inside the scan
    data_parallel = True  # spec.devices > 1: the batch sharded over a device mesh (jax_common.Placement)
    dtypes = frozenset(DTYPES)  # a jmp policy in the base; the neurons follow their input's dtype
    xla_convolutions = False  # patches and GEMMs (reference/conv.py): as fast in the epoch's scan as alone

    def info(self) -> RunnerInfo:
        import haiku
        import jax
        import optax

        return RunnerInfo(
            framework="jax",
            version=jax.__version__,
            mode=self._epoch_text() + "; per layer one GEMM over T*B rows + lax.scan over time",
            extra={"haiku": haiku.__version__, "optax": optax.__version__, **self._common_extra(),
                   "weight_gradient": "x^T copied before its GEMM for layers 2048 or more wide (XLA:CPU)"
                   if self._knobs()["transpose_copy"] else "x^T g as one dot"},
        )

    def _build_model(self, case: Case, seed: int) -> None:
        from .model import make_network

        self.network = make_network(case.network, **self._knobs())

    def _knobs(self) -> dict:
        """The backend's speed knobs of :func:`.model.make_network` (what is computed stays the same)."""
        return {"unroll": self.unroll, "transpose_copy": self.device.platform == "cpu"}

    def _apply(self, params, x):
        return self.network.apply(params, x)

    def evaluate_at(self, data: SpikeDataset) -> EvalResult:
        import dataclasses

        import jax

        from .model import logits_from_readout, make_network

        if any(layer.type in ("psn", "masked_psn") for layer in self.case.network.layers):
            raise NotImplementedError("PSN weights are [T, T]: the network only runs at its training length")
        net = make_network(dataclasses.replace(self.case.network, time_steps=data.time_steps), serial=True,
                           **self._knobs())
        mode, population = self.case.spec.loss, self.case.network.population

        @jax.jit
        def logits(params, packed):
            readout = net.apply(*self._to_compute(params, unpack_time_major(packed))).readout
            return logits_from_readout(readout.astype(jax.numpy.float32), mode, population)

        B, correct, nll = self.case.spec.batch, 0, 0.0
        for start in range(0, len(data), B):
            packed, y = data.packed[start:start + B], data.labels[start:start + B]
            out = np.asarray(logits(self.params, jax.device_put(packed, self.device)))
            logp = out - np.logaddexp.reduce(out, axis=-1, keepdims=True)
            nll -= float(logp[np.arange(len(y)), y].sum())
            correct += int((out.argmax(-1) == y).sum())
        return EvalResult(accuracy=correct / len(data), loss=nll / len(data), samples=len(data))

    def serial_forward(self, x: np.ndarray) -> ForwardResult | None:
        import jax

        from .model import make_network

        if not any(layer.type in ("lif_noreset", "dsn") or layer.method == "fixed_point"
                   for layer in self.case.network.layers if layer.is_neuron):
            return None
        serial = make_network(self.case.network, serial=True, **self._knobs())
        xt, _ = self._dense(x, np.zeros(len(x)))
        out = jax.jit(lambda params, x: serial.apply(*self._to_compute(params, x)))(self.params, xt)
        return ForwardResult(spikes=[np.swapaxes(np.asarray(s, np.float32), 0, 1) for s in out.spikes],
                             readout=np.swapaxes(np.asarray(out.readout, np.float32), 0, 1), dtype=str(out.readout.dtype))

    def _to_params(self, weights):
        from .model import to_haiku

        return to_haiku(weights)

    def _from_params(self, params):
        from .model import from_haiku

        return from_haiku(params)
