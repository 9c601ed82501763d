"""The spec as an snnTorch network, stepped one time step at a time as snnTorch's tutorials do:
``nn.Linear`` / ``nn.Conv2d`` on ``x[t]``, then the neuron with its state carried by the caller (a
recurrent layer's state includes its previous spikes: ``snn.RLeaky`` / ``snn.RSynaptic``)."""

from __future__ import annotations

import snntorch as snn
import torch
from snntorch import surrogate
from torch import nn

from ...spec import LayerSpec, NetworkSpec
from ..torch_common import weight_module
from ..torchmath.spike import surrogate_grad_torch

STATELESS = ("linear", "conv2d", "maxpool", "flatten")


def spike_grad(name: str, slope: float):
    """snnTorch's surrogate with the canonical formula (``custom_surrogate`` where snnTorch's own differs)."""
    if name == "arctan":
        return surrogate.atan(alpha=slope)
    if name == "superspike":
        return surrogate.fast_sigmoid(slope=slope)
    if name == "sigmoid":
        return surrogate.sigmoid(slope=slope)
    if name == "straight_through":
        return surrogate.straight_through_estimator()
    return surrogate.custom_surrogate(lambda x, grad, _spk: grad * surrogate_grad_torch(name, x, slope))


def recurrent_neuron(layer: LayerSpec, n: int, beta, grad) -> nn.Module:
    """``snn.RLeaky`` (``lif``, ``if``) or ``snn.RSynaptic`` (``cuba_lif``) with an all-to-all recurrence:
    ``all_to_all=True, linear_features=n`` makes it an ``nn.Linear(n, n)`` whose ``weight [out, in]`` is
    the canonical ``V``. That ``nn.Linear`` has a bias the spec's recurrence does not have: it is zeroed
    and frozen (``requires_grad=False``, so no optimizer sees it)."""
    kw = dict(beta=beta, threshold=layer.threshold, spike_grad=grad, reset_mechanism=layer.reset,
              learn_beta=layer.learn_beta, all_to_all=True, linear_features=n, learn_recurrent=True)
    module = snn.RSynaptic(alpha=layer.alpha, **kw) if layer.type == "cuba_lif" else snn.RLeaky(**kw)
    with torch.no_grad():
        module.recurrent.bias.zero_()
    module.recurrent.bias.requires_grad_(False)
    return module


class SnnTorchNet(nn.Module):
    """``forward(x [T, B, C], record_spikes) -> (spikes per spiking layer [T, B, n], readout [T, B, O])``;
    module ``layers.{i}`` holds spec layer ``i``."""

    def __init__(self, net: NetworkSpec):
        super().__init__()
        self.spec = net
        self.kinds = [layer.type for layer in net.layers]
        self.recurrent = [layer.recurrent for layer in net.layers]
        self.in_shapes = net.input_shapes()
        grad = spike_grad(net.surrogate.name, net.surrogate.slope)
        layers = []
        for i, (layer, n, shape) in enumerate(zip(net.layers, net.sizes(), net.shapes())):
            # a per-neuron decay has the shape of the layer's activity: [n] or [C, H, W]
            beta = torch.full(shape, float(layer.decay)) if layer.learn_beta else float(layer.decay)
            if layer.is_weight:
                layers.append(weight_module(layer, self.in_shapes[i], n))
            elif layer.type == "maxpool":
                layers.append(nn.MaxPool2d(int(layer.kernel), int(layer.stride)))
            elif layer.type == "flatten":
                layers.append(nn.Flatten())
            elif layer.type == "li":
                layers.append(snn.Leaky(beta=beta, reset_mechanism="none", learn_beta=layer.learn_beta))
            elif layer.recurrent:
                layers.append(recurrent_neuron(layer, n, beta, grad))
            elif layer.type == "cuba_lif":
                layers.append(snn.Synaptic(alpha=layer.alpha, beta=beta, threshold=layer.threshold, spike_grad=grad,
                                           reset_mechanism=layer.reset, learn_beta=layer.learn_beta))
            else:
                layers.append(snn.Leaky(beta=beta, threshold=layer.threshold, spike_grad=grad,
                                        reset_mechanism=layer.reset, learn_beta=layer.learn_beta))
        self.layers = nn.ModuleList(layers)

    def forward(self, x, record_spikes: bool = False):
        assert x.dim() == 3 and x.shape[-1] == self.spec.inputs, f"expected [T, B, C], got {tuple(x.shape)}"
        kinds = self.kinds
        # Fresh state per sequence: an empty membrane makes snnTorch start from zeros.
        # (RLeaky's state is (spk, mem), RSynaptic's (spk, syn, mem): the previous spikes are state)
        state = [m.reset_mem() if rec else m.init_synaptic() if k == "cuba_lif" else
                 m.init_leaky() if k not in STATELESS else None
                 for k, m, rec in zip(kinds, self.layers, self.recurrent)]
        spk_rec = [[] for k in kinds if k in ("lif", "if", "cuba_lif")]
        readout = []
        B = x.shape[1]
        for x_t in x:
            h, j = x_t.reshape(B, *self.in_shapes[0]), 0  # images as [B, C, H, W], as a snnTorch user feeds them
            for i, (kind, module) in enumerate(zip(kinds, self.layers)):
                if kind in STATELESS:
                    h = module(h)
                elif self.recurrent[i]:  # the previous step's spikes go in with the state
                    state[i] = module(h, *state[i])
                    h = state[i][0]
                    spk_rec[j].append(h)
                    j += 1
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
        # Stacking the per-step spikes is a copy (and, compiled, extra graph outputs: 5-10% of a training step
        # at T 32 B 32): only the parity forward asks for them.
        spikes = [torch.stack(s).flatten(2) for s in spk_rec] if record_spikes else []  # [T, B, n], (C, H, W) order
        return spikes, torch.stack(readout).flatten(2) if readout else torch.stack(spk_rec[-1]).flatten(2)
