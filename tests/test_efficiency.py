"""The efficiency metrics (snnbench.harness.efficiency) against NeuroBench's own implementation, on the same
snnTorch model, weights and inputs: parameter count, synaptic operations and activation sparsity must agree
exactly; the footprint differs by exactly snnTorch's own bookkeeping buffers, named below."""

import numpy as np
import pytest

from snnbench.harness.efficiency import efficiency, synaptic_operations
from snnbench.runners import get_runner_class
from snnbench.spec import parse_suite, init_weights

#: buffers an snn.Leaky keeps that are no neuron constant of the canonical network (its state ``mem`` is empty
#: when NeuroBench measures, before the run); a readout Leaky's threshold is one too (an ``li`` has none)
SNNTORCH_BOOKKEEPING = ("graded_spikes_factor", "reset_mechanism_val")


def _case(layers, image=False, channels=32, T=16, batch=6):
    net = {"neuron": {"beta": 0.9, "threshold": 1.0, "reset": "subtract"},
           "surrogate": {"name": "superspike", "slope": 1.0}, "layers": layers}
    defaults = {"time_steps": T, "batch": batch}
    defaults.update({"dataset": "nmnist"} if image else {"channels": channels})
    return parse_suite({"suite": "t", "defaults": defaults, "network": net, "cases": [{"id": "c"}]},
                       "t.yaml").cases[0]


DENSE = [{"type": "linear", "out": 24}, {"type": "lif"}, {"type": "linear", "out": 16}, {"type": "lif"},
         {"type": "linear", "out": 5}, {"type": "li"}]
CONV = [{"type": "conv2d", "out": 4, "kernel": 3, "padding": 1}, {"type": "lif"}, {"type": "maxpool", "kernel": 2},
        {"type": "conv2d", "out": 6, "kernel": 3, "stride": 2}, {"type": "lif"}, {"type": "flatten"},
        {"type": "linear", "out": 5}, {"type": "li"}]


def _weights(case, seed=1):
    """Canonical weights scaled up so that the layers spike, with some weights exactly zero (they must not
    count as effective operations)."""
    w = init_weights(case.network, seed)
    for name in list(w):
        if name.endswith("weight"):
            w[name] = (w[name] * 3).astype(np.float32)
            w[name].reshape(-1)[::7] = 0.0
    return w


def _neurobench_model(case, weights):
    """The network in NeuroBench's snnTorch idiom: an nn.Sequential stepped once per time step, neurons with
    init_hidden, the readout a Leaky with output=True (NeuroBench's SNNTorchModel reads ``(spk, mem)``)."""
    import snntorch as snn
    import torch
    from neurobench.models import SNNTorchModel
    from torch import nn

    mods = []
    for i, (layer, shape_in) in enumerate(zip(case.network.layers, case.network.input_shapes())):
        if layer.type == "linear":
            m = nn.Linear(shape_in[0], layer.out)
        elif layer.type == "conv2d":
            m = nn.Conv2d(shape_in[0], layer.out, layer.kernel, stride=layer.stride, padding=layer.padding)
        elif layer.type == "maxpool":
            m = nn.MaxPool2d(layer.kernel, layer.stride)
        elif layer.type == "flatten":
            m = nn.Flatten()
        elif layer.type == "lif" and layer.recurrent:  # its recurrent nn.Linear is a connection layer to NeuroBench
            m = snn.RLeaky(beta=layer.beta, threshold=layer.threshold, reset_mechanism="subtract", init_hidden=True,
                           all_to_all=True, linear_features=shape_in[0])
            with torch.no_grad():
                m.recurrent.weight.copy_(torch.from_numpy(weights[f"layers.{i}.recurrent"]))
                m.recurrent.bias.zero_()
        elif layer.type == "lif":
            m = snn.Leaky(beta=layer.beta, threshold=layer.threshold, reset_mechanism="subtract", init_hidden=True)
        else:
            m = snn.Leaky(beta=layer.beta, reset_mechanism="none", init_hidden=True, output=True)
        if layer.is_weight:
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(weights[f"layers.{i}.weight"]))
                m.bias.copy_(torch.from_numpy(weights[f"layers.{i}.bias"]))
        mods.append(m)
    net = nn.Sequential(*mods)
    readout = mods[-1]

    class HiddenLayersOnly(SNNTorchModel):
        """NeuroBench counts every snn.SpikingNeuron as an activation layer, so also the readout's unused
        threshold output; snnbench counts the spiking layers (efficiency's docstring)."""

        def activation_layers(self):
            return [la for la in super().activation_layers() if la["layer"] is not readout]

    return net, HiddenLayersOnly(net)


def _neurobench(model, x, y):
    import torch
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import Footprint, ParameterCount
    from neurobench.metrics.workload import ActivationSparsity, ActivationSparsityByLayer, SynapticOperations
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=len(x))
    bench = Benchmark(model, loader, [], [], [[ParameterCount, Footprint],
                                             [ActivationSparsity, ActivationSparsityByLayer, SynapticOperations]])
    return bench.run(quiet=True)


def _input(case, rng, counts_at=None):
    B, T = case.spec.batch, case.spec.time_steps
    x = (rng.random((B, T, case.network.inputs)) < 0.3).astype(np.float32)
    if counts_at is not None:  # a step with event counts above 1: its first layer's operations are MACs
        x[:, counts_at] *= 2.0
    return x


def _check(case, counts_at=None):
    for package in ("neurobench", "snntorch"):
        pytest.importorskip(package, reason=f"{package} is not installed (make test installs it)")
    weights = _weights(case)
    x = _input(case, np.random.default_rng(4), counts_at)
    y = np.zeros(len(x), np.int64)
    runner = get_runner_class("snntorch")()
    runner.build(case, "cpu", 0)
    runner.set_weights(weights)
    ours = efficiency(case.network, weights, x, runner.forward(x).spikes)

    net, hidden = _neurobench_model(case, weights)
    nb_x = x.reshape(len(x), x.shape[1], *case.network.sample_shape)
    theirs = _neurobench(hidden, nb_x, y)
    # snnTorch's recurrent nn.Linear has a bias (zeroed, frozen: no canonical parameter); NeuroBench counts it
    rec_bias = sum(n for layer, n in zip(case.network.layers, case.network.sizes()) if layer.recurrent)
    assert ours["params"] + rec_bias == theirs["ParameterCount"]
    assert ours["synops"] == {"dense": theirs["SynapticOperations"]["Dense"],
                              "effective_macs": theirs["SynapticOperations"]["Effective_MACs"],
                              "effective_acs": theirs["SynapticOperations"]["Effective_ACs"]}
    assert ours["activation_sparsity"] == theirs["ActivationSparsity"]
    by_layer = list(theirs["ActivationSparsityByLayer"].values())
    assert [la["sparsity"] for la in ours["layers"]] == by_layer
    assert 0.05 < ours["activation_sparsity"] < 0.99, "the test network should spike, but not everywhere"
    readout = f"{len(net) - 1}.threshold"
    bookkeeping = sum(b.numel() * b.element_size() for name, b in net.named_buffers()
                      if name.rsplit(".", 1)[-1] in SNNTORCH_BOOKKEEPING or name == readout)
    assert theirs["Footprint"] == ours["footprint_bytes"] + bookkeeping + 4 * rec_bias
    return ours


def test_dense_network_agrees_with_neurobench_exactly():
    ours = _check(_case(DENSE))
    assert ours["synops"]["effective_macs"] == 0  # binary input and spikes: accumulates only
    assert 0 < ours["synops"]["effective_acs"] < ours["synops"]["dense"]


def test_event_counts_make_that_steps_first_layer_operations_macs():
    ours = _check(_case(DENSE), counts_at=3)
    assert ours["synops"]["effective_macs"] > 0


def test_conv_network_with_padding_stride_and_pooling_agrees_with_neurobench_exactly():
    ours = _check(_case(CONV, image=True))
    assert ours["synops"]["effective_acs"] > 0


def test_dense_operations_count_every_weight_and_input():
    case = _case(DENSE)
    w = _weights(case)
    x = np.ones((2, case.spec.time_steps, case.network.inputs), np.float32)
    spikes = [np.ones((2, case.spec.time_steps, n), np.float32) for n in case.network.hidden_sizes()]
    ops = synaptic_operations(case.network, w, x, spikes)
    T = case.spec.time_steps
    assert ops["dense"] == T * (32 * 24 + 24 * 16 + 16 * 5)
    nonzero = sum(int(np.count_nonzero(w[f"layers.{i}.weight"])) for i in (0, 2, 4))
    assert ops["effective_acs"] == T * nonzero


RECURRENT = [{"type": "linear", "out": 24}, {"type": "lif", "recurrent": True}, {"type": "linear", "out": 5},
             {"type": "li"}]


def test_recurrent_network_agrees_with_neurobench_exactly():
    """snnTorch's RLeaky calls its recurrent nn.Linear on the previous step's spikes every step; NeuroBench
    counts it as a connection layer: the synaptic operations of V s_{t-1} must be ours exactly."""
    case = _case(RECURRENT)
    ours = _check(case)
    w = _weights(case)
    without = synaptic_operations(case.network, w, np.zeros((1, 16, 32), np.float32), [np.zeros((1, 16, 24))])
    assert ours["synops"]["dense"] == without["dense"] == 16 * (32 * 24 + 24 * 24 + 24 * 5)
    assert ours["synops"]["effective_macs"] == 0


def test_recurrent_operations_use_the_previous_steps_spikes():
    case = _case(RECURRENT, T=8)
    w = _weights(case)
    w["layers.0.weight"][:] = 0.0  # only the recurrent product counts
    w["layers.2.weight"][:] = 0.0
    spikes = np.zeros((1, 8, 24), np.float32)
    spikes[0, 1, 3] = 1.0  # one spike at t = 1: V's column 3 is used at t = 2 only
    ops = synaptic_operations(case.network, w, np.zeros((1, 8, 32), np.float32), [spikes])
    assert ops["effective_acs"] == np.count_nonzero(w["layers.1.recurrent"][:, 3])
    spikes[0, 7, 5] = 1.0  # a spike at the last step feeds nothing
    assert synaptic_operations(case.network, w, np.zeros((1, 8, 32), np.float32), [spikes]) == ops


def test_spike_trains_must_match_the_spiking_layers():
    case = _case(DENSE)
    x = np.zeros((1, case.spec.time_steps, case.network.inputs), np.float32)
    with pytest.raises(ValueError, match="spike trains"):
        synaptic_operations(case.network, _weights(case), x, [])
