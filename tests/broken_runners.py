"""Runners that break the Runner contract on purpose, for ``snnbench check-runner``'s tests (loaded into
every process through ``SNNBENCH_PLUGINS``). Each is plain PyTorch with one lie."""

from dataclasses import replace

from snnbench.runners.base import Support
from snnbench.runners.torch_runner import TorchRunner
from snnbench.spec import with_reset


class WrongResetRunner(TorchRunner):
    """Claims the case's subtractive reset, computes a reset to zero."""

    name = "broken-reset"

    def build(self, case, device, seed):
        super().build(with_reset(case, "subtract", "zero"), device, seed)


class FalseDtypeRunner(TorchRunner):
    """Claims bfloat16 and float16 (as plain torch does), computes everything in float32."""

    name = "broken-dtype"

    def build(self, case, device, seed):
        super().build(replace(case, spec=replace(case.spec, dtype="float32")), device, seed)


class UnreportedRunner(TorchRunner):
    """Accepts every case, yet cannot build a convolutional network."""

    name = "broken-unsupported"

    def supports(self, case):
        return Support.yes()

    def build(self, case, device, seed):
        if any(layer.type == "conv2d" for layer in case.network.layers):
            raise NotImplementedError("convolutions are not implemented")
        super().build(case, device, seed)
