"""Recurrent LIF (``recurrent: true``) in Spyx, Rockpool (torch and JAX), SpikingJelly, BrainPy and Sinabs:
each framework's own recurrent neuron against the reference on a small recurrent net, and the
refusals of what they cannot express. Each test skips only when its framework is not installed."""

import numpy as np
import pytest

from snnbench.harness import parity
from snnbench.spec import init_weights, parse_suite

from .test_adapters import need


def rec_case(neuron="lif", reset="subtract", detach_reset=True, T=16, hidden=12, **neuron_over):
    """A small net with one recurrent hidden layer (the ``shd-rec-h128`` shape, scaled down)."""
    net = {"neuron": {"beta": 0.9, "threshold": 1.0, "reset": reset, "detach_reset": detach_reset, **neuron_over},
           "surrogate": {"name": "superspike", "slope": 1.0},
           "layers": [{"type": "linear", "out": hidden}, {"type": neuron, "recurrent": True},
                      {"type": "linear", "out": 20}, {"type": "li"}]}
    return parse_suite({"suite": "t", "defaults": {"time_steps": T, "channels": 32, "batch": 16, "lr": 0.01},
                        "network": net, "cases": [{"id": "c"}]}, "t.yaml").cases[0]


def _checked(res):
    """The recurrent weight's gradient was compared, and the recurrence really carried spikes."""
    assert res["spikes"][0]["spikes_ref"] > 0
    assert "layers.1.recurrent" in res["grads"], sorted(res["grads"])
    return res


#: (runner, case): the case on which each framework's recurrent neuron is the canonical one exactly
EXACT = [
    ("rockpool", rec_case(reset="subtract_decayed", detach_reset=False)),  # LIFTorch(has_rec=True)
    ("spikingjelly", rec_case(reset="subtract_decayed")),  # LinearRecurrentContainer
    ("spikingjelly", rec_case("if", reset="zero")),
    ("brainpy", rec_case(detach_reset=False)),  # LIF + CurrentProj of its own spikes
    ("sinabs", rec_case()),  # LIFRecurrent with a bias-free nn.Linear as rec_connect
    ("sinabs", rec_case("if", reset="zero")),  # IAFRecurrent
]


@pytest.mark.parametrize("name, case", EXACT, ids=[f"{n}-{c.network.layers[1].type}" for n, c in EXACT])
def test_recurrent_neuron_passes_parity(name, case):
    need(name, case)
    res = _checked(parity.compare(case, name, batch=8))
    assert res["status"] == "pass", parity.summary(res)
    assert res["grads"]["layers.1.recurrent"]["cosine"] >= 0.999999


def test_spyx_recurrent_neuron_is_the_reference_one_step_late():
    """spyx.nn.RLIF feeds back the spike decided on v_{t-1}, the canonical s_{t-1}: the membrane is
    exact, the output one step late (Spyx's declared timing) and the reset attached."""
    case = rec_case()
    need("spyx", case)
    res = _checked(parity.compare(case, "spyx", batch=8))
    assert res["status"] == "deviates", parity.summary(res)
    assert [d.split(" (")[0] for d in res["deviations"]] == ["spikes one step late per spiking layer",
                                                              "reset not detached"]
    proof = res["proof"]
    assert proof["agrees"] and sum(s["flips"] for s in proof["spikes"]) == 0, parity.summary(res)


def test_rockpool_jax_recurrent_forward_is_exact():
    """LIFJax(has_rec=True): recurrent input into the (vanishing) synaptic current; only Rockpool's
    hard-coded step_pwl surrogate differs, and the proof reproduces it."""
    case = rec_case(reset="subtract_decayed", detach_reset=False)
    need("rockpool-jax", case)
    res = _checked(parity.compare(case, "rockpool-jax", batch=8))
    assert res["status"] == "deviates" and res["deviations"] == [
        "surrogate is Rockpool's step_pwl, 1/threshold for v >= threshold - 0.5 (spec: superspike slope 1)"]
    assert res["checks"]["spikes_identical"] and res["readout_max_rel_err"] < 1e-5
    assert res["proof"]["agrees"] and res["proof"]["max_grad_norm_rel_err"] < 1e-5


@pytest.mark.parametrize("name", ["spyx", "rockpool", "rockpool-jax", "spikingjelly", "brainpy", "sinabs"])
def test_recurrent_weights_roundtrip(name):
    case = rec_case()
    r = need(name, case)()
    r.build(case, "cpu", 0)
    w = init_weights(case.network, 3)
    r.set_weights(w)
    got = r.get_weights()
    assert set(got) == set(w)
    for k in w:
        np.testing.assert_array_equal(got[k], w[k], err_msg=k)


def test_spikingjelly_container_keeps_its_input_path_the_identity():
    """LinearRecurrentContainer's weight is [I | V]: a training step moves V and leaves I."""
    case = rec_case(reset="subtract_decayed")
    r = need("spikingjelly", case)()
    r.build(case, "cpu", 0)
    r.set_weights(init_weights(case.network, 0))
    rng = np.random.default_rng(0)
    x = (rng.random((8, 16, 32)) < 0.2).astype(np.float32)
    before = r.model.layers[1].rc.weight.detach().clone().numpy()
    r.train_step(*r._to_device(x, rng.integers(0, 20, 8)))
    after = r.model.layers[1].rc.weight.detach().numpy()
    np.testing.assert_array_equal(after[:, :12], np.eye(12, dtype=np.float32))
    assert np.abs(after[:, 12:] - before[:, 12:]).max() > 0


@pytest.mark.parametrize("name, case, reason", [
    ("spyx", rec_case("cuba_lif"), "layer 1"),
    ("rockpool", rec_case("cuba_lif"), "layer 1"),
    ("spikingjelly", rec_case("cuba_lif"), "layer 1"),
    ("brainpy", rec_case("if"), "layer 1"),
])
def test_recurrent_cases_without_a_mapping_are_refused(name, case, reason):
    cls = need(name)
    ok = cls().supports(case)
    assert not ok.ok and reason in ok.reason, ok.reason


def test_spyx_refuses_a_recurrent_layer_after_a_convolution():
    cls = need("spyx")
    net = {"neuron": {"beta": 0.9, "threshold": 1.0}, "surrogate": {"name": "superspike", "slope": 1.0},
           "layers": [{"type": "conv2d", "out": 2, "kernel": 3}, {"type": "lif", "recurrent": True},
                      {"type": "flatten"}, {"type": "linear", "out": 10}, {"type": "li"}]}
    case = parse_suite({"suite": "t", "defaults": {"dataset": "nmnist", "time_steps": 8, "batch": 4},
                        "network": net, "cases": [{"id": "c"}]}, "t.yaml").cases[0]
    ok = cls().supports(case)
    assert not ok.ok and "spyx.nn.RLIF feeds back flat spike vectors" in ok.reason, ok.reason


def test_a_dropped_recurrent_weight_fails_the_gate(monkeypatch):
    """The gate sees the recurrence: the spikingjelly adapter with its recurrent block zeroed must fail."""
    from snnbench.runners import registry
    from snnbench.runners.spikingjelly_runner import SpikingJellyRunner

    case = rec_case(reset="subtract_decayed")
    need("spikingjelly", case)

    class NoRecurrence(SpikingJellyRunner):
        name = "no-recurrence"

        def set_weights(self, weights):
            super().set_weights({k: v * 0 if k.endswith(".recurrent") else v for k, v in weights.items()})

    monkeypatch.setitem(registry(), "no-recurrence", NoRecurrence)
    assert parity.compare(case, "no-recurrence", batch=8)["status"] == "fail"


def test_rockpool_recurrent_layer_uses_the_framework_class():
    """Not emulated: the layer is Rockpool's own LIFTorch with has_rec (and its w_rec is trained)."""
    case = rec_case(reset="subtract_decayed", detach_reset=False)
    r = need("rockpool", case)()
    r.build(case, "cpu", 0)
    module = r.model.layers[1]
    assert type(module).__name__ == "LIFTorch" and module._has_rec and module.w_rec.requires_grad
    assert not any(p.requires_grad for n, p in module.named_parameters() if n != "w_rec")



def test_sinabs_recurrent_state_does_not_carry_over_between_batches():
    """``sinabs.reset_states`` (3.1.3) skips ``LIFRecurrent`` (it has a child module): the adapter resets
    every Sinabs layer itself, so two forwards of one batch are identical."""
    case = rec_case()
    need("sinabs", case)
    import torch

    from snnbench.runners.nets.sinabs_net import SinabsNet

    model = SinabsNet(case.network)
    x = (torch.rand(4, 16, 32, generator=torch.Generator().manual_seed(0)) < 0.3).float() * 3
    with torch.no_grad():
        first, second = model(x)[1], model(x)[1]
    assert model.layers[1].v_mem.abs().max() > 0  # the layer did integrate (and so had a state to carry)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
