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

Deviation: snnTorch always detaches the reset, so ``detach_reset: false`` cannot be expressed; such
a case runs detached and the parity result says so.
"""

from __future__ import annotations

from ..spec import Case, NetworkSpec
from .base import RunnerInfo
from .torch_common import TorchRunnerBase, conv2d_module, surrogate_grad_torch


def _spike_grad(name: str, slope: float):
    from snntorch import surrogate

    if name == "arctan":
        return surrogate.atan(alpha=slope)
    if name == "superspike":
        return surrogate.fast_sigmoid(slope=slope)
    if name == "sigmoid":
        return surrogate.sigmoid(slope=slope)
    if name == "straight_through":
        return surrogate.straight_through_estimator()
    return surrogate.custom_surrogate(lambda x, grad, _spk: grad * surrogate_grad_torch(name, x, slope))


def build_snntorch_module(net: NetworkSpec):
    import snntorch as snn
    import torch
    from torch import nn

    grad = _spike_grad(net.surrogate.name, net.surrogate.slope)
    in_shapes = net.input_shapes()

    def beta_arg(layer, n, shape):
        # a per-neuron decay has the shape of the layer's activity: [n] or [C, H, W]
        return torch.full(shape, float(layer.decay)) if layer.learn_beta else float(layer.decay)

    class SnnTorchNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.spec = net
            layers = []
            for i, (layer, n, shape) in enumerate(zip(net.layers, net.sizes(), net.shapes())):
                if layer.type == "linear":
                    layers.append(nn.Linear(in_shapes[i][0], n, bias=layer.bias))
                elif layer.type == "conv2d":
                    layers.append(conv2d_module(layer, in_shapes[i][0]))
                elif layer.type == "maxpool":
                    layers.append(nn.MaxPool2d(int(layer.kernel), int(layer.stride)))
                elif layer.type == "flatten":
                    layers.append(nn.Flatten())
                elif layer.type == "li":
                    layers.append(snn.Leaky(beta=beta_arg(layer, n, shape), reset_mechanism="none",
                                            learn_beta=layer.learn_beta))
                elif layer.type == "cuba_lif":
                    layers.append(snn.Synaptic(alpha=layer.alpha, beta=beta_arg(layer, n, shape), threshold=layer.threshold,
                                               spike_grad=grad, reset_mechanism=layer.reset, learn_beta=layer.learn_beta))
                else:
                    layers.append(snn.Leaky(beta=beta_arg(layer, n, shape), threshold=layer.threshold, spike_grad=grad,
                                            reset_mechanism=layer.reset, learn_beta=layer.learn_beta))
            self.layers = nn.ModuleList(layers)

        def forward(self, x):
            assert x.dim() == 3 and x.shape[-1] == self.spec.inputs, f"expected [T, B, C], got {tuple(x.shape)}"
            kinds = [layer.type for layer in self.spec.layers]
            stateless = ("linear", "conv2d", "maxpool", "flatten")
            # Fresh state per sequence: an empty membrane makes snnTorch start from zeros.
            state = [m.init_synaptic() if k == "cuba_lif" else m.init_leaky() if k not in stateless else None
                     for k, m in zip(kinds, self.layers)]
            spk_rec = [[] for k in kinds if k in ("lif", "if", "cuba_lif")]
            readout = []
            B = x.shape[1]
            for x_t in x:
                h, j = x_t.reshape(B, *in_shapes[0]), 0  # images as [B, C, H, W], as a snnTorch user feeds them
                for i, (kind, module) in enumerate(zip(kinds, self.layers)):
                    if kind in stateless:
                        h = module(h)
                    elif kind == "cuba_lif":
                        syn, mem = state[i]
                        h, syn, mem = module(h, syn, mem)
                        state[i] = (syn, mem)
                        spk_rec[j].append(h)
                        j += 1
                    else:
                        spk, state[i] = module(h, state[i])
                        if kind == "li":
                            readout.append(state[i])
                        else:
                            spk_rec[j].append(spk)
                            j += 1
                            h = spk
            spikes = [torch.stack(s).flatten(2) for s in spk_rec]  # [T, B, n], canonical (C, H, W) order
            return spikes, torch.stack(readout).flatten(2) if readout else spikes[-1]

    return SnnTorchNet()


class SnnTorchRunner(TorchRunnerBase):
    name = "snntorch"
    framework = "snntorch"
    package = "snntorch"

    def make_model(self, case: Case):
        return build_snntorch_module(case.network)

    def param_names(self) -> dict[str, str]:
        names = super().param_names()
        for i, layer in enumerate(self.case.network.layers):
            if layer.is_neuron and layer.learn_beta:
                names[f"layers.{i}.beta"] = f"layers.{i}.beta"
        return names

    def deviations(self) -> list[str]:
        if any(layer.spiking and not layer.detach_reset for layer in self.case.network.layers):
            return ["reset always detached (spec: detach_reset false)"]
        return []

    def info(self) -> RunnerInfo:
        import snntorch
        import torch

        return RunnerInfo(framework="snntorch", version=snntorch.__version__,
                          mode="eager; nn.Linear + snn.Leaky stepped per time step",
                          extra={"torch": torch.__version__, "threads": torch.get_num_threads(),
                                 "deviations": self.deviations()})
