"""Adapters against the reference: the parity gate, weight exchange, and one training epoch each.

Each test skips only when its framework is not installed (with the reason from the runner)."""

from dataclasses import replace

import numpy as np
import pytest

from snnbench.harness import parity
from snnbench.runners import get_runner_class, registry
from snnbench.spec import init_weights, parse_suite

from .conftest import assert_spyx_is_the_reference_delayed, tiny_network_yaml

#: every adapter in the registry (a new runner file is tested here without editing this file)
ADAPTERS = [name for name in registry() if name != "reference"]


def make_case(surrogate="superspike", slope=1.0, reset="subtract", T=16, **network_over):
    net = tiny_network_yaml(reset=reset)
    net["surrogate"] = {"name": surrogate, "slope": slope}
    net["layers"] = [{"type": "linear", "out": 24}, {"type": "lif"}, {"type": "linear", "out": 24}, {"type": "lif"},
                     {"type": "linear", "out": 20}, {"type": "li"}]
    net["neuron"].update(network_over)
    return parse_suite({"suite": "t", "defaults": {"time_steps": T, "channels": 32, "batch": 16, "lr": 0.01},
                        "network": net, "cases": [{"id": "c"}]}, "t.yaml").cases[0]


def need(name, case=None):
    """The runner class, or a skip with the runner's own reason: not installed, or (given ``case``)
    unable to express it (a runner of other networks, such as the long-sequence neurons)."""
    cls = get_runner_class(name)
    ok = cls.available()
    if not ok.ok:
        pytest.skip(ok.reason)
    if not get_runner_class("reference").available().ok:
        pytest.skip("the reference runner (JAX) is not installed")
    if case is not None and not (supported := cls().supports(case)).ok:
        pytest.skip(f"{name} does not express the test network: {supported.reason}")
    return cls


@pytest.mark.parametrize("name, reset", [(n, r) for n in ("torch", "snntorch", "norse") for r in ("subtract", "zero")]
                         + [("torch", "subtract_decayed"), ("norse", "subtract_decayed")]
                         + [("sinabs", r) for r in ("subtract", "subtract_decayed", "zero")]
                         + [("spikingjelly", r) for r in ("subtract_decayed", "zero")])
def test_exact_adapters_pass_parity(name, reset):
    need(name)
    res = parity.compare(make_case(reset=reset, T=32), name, batch=8)
    assert res["status"] == "pass", parity.summary(res)
    assert res["spikes"][0]["spikes_ref"] > 0  # the check saw spikes
    assert res["min_grad_cosine"] >= 0.999 and res["loss_rel_err"] <= 1e-5


@pytest.mark.parametrize("name", ["sinabs", "spikingjelly"])
def test_attached_reset_is_expressed(name):
    need(name)
    reset = "subtract" if name == "sinabs" else "subtract_decayed"
    res = parity.compare(make_case(reset=reset, T=32, detach_reset=False), name, batch=8)
    assert res["status"] == "pass", parity.summary(res)


@pytest.mark.parametrize("name, declared", [
    ("spikingjelly", ["soft reset subtracts the threshold before the decay"]),
    ("rockpool", ["reset subtracts the threshold before the decay", "reset gradient not detached"]),
    ("rockpool-jax", ["reset subtracts the threshold before the decay", "reset gradient not detached",
                      "surrogate is Rockpool's step_pwl"])])
def test_soft_reset_frameworks_declare_and_prove_their_reset(name, declared):
    """On the canonical subtract reset these frameworks compute subtract_decayed (Rockpool also with
    the reset attached): the gate measures the difference and proves the declaration."""
    need(name)
    res = parity.compare(make_case(T=32), name, batch=8)
    assert res["status"] == "deviates", parity.summary(res)
    assert all(any(d.startswith(text) for d in res["deviations"]) for text in declared), res["deviations"]
    assert sum(s["flips"] for s in res["spikes"]) > 0  # the difference is real and measured
    assert res["proof"]["agrees"] and sum(s["flips"] for s in res["proof"]["spikes"]) == 0


@pytest.mark.parametrize("reset", ["subtract", "subtract_decayed"])
def test_brainpy_expresses_both_subtractive_resets_exactly(reset):
    """BrainPy's soft reset with V_reset = th (1 - 1/beta) is the spec's subtract, with V_reset = 0 its
    subtract_decayed; only the detached reset gradient is out of reach."""
    need("brainpy")
    res = parity.compare(make_case(reset=reset, T=32, detach_reset=False), "brainpy", batch=8)
    assert res["status"] == "pass", parity.summary(res)
    assert res["spikes"][0]["spikes_ref"] > 0
    assert res["min_grad_cosine"] >= 0.999 and res["loss_rel_err"] <= 1e-5


def test_brainpy_declares_and_proves_its_attached_reset():
    need("brainpy")
    res = parity.compare(make_case(T=32), "brainpy", batch=8)
    assert res["status"] == "deviates", parity.summary(res)
    assert res["deviations"] == ["reset gradient not detached (BrainPy's soft reset; spec: detach_reset true)"]
    assert res["checks"]["readout"] and not res["checks"]["grads"]  # same forward, different gradients
    assert res["proof"]["agrees"]


def test_brainpy_surrogate_is_rescaled_to_the_canonical_derivative():
    """BrainPy divides V - V_th by V_th - V_reset before its surrogate; with threshold 0.7 and the
    subtract reset that divisor is 0.7 / 0.9, so an unscaled surrogate would fail the gradients."""
    need("brainpy")
    res = parity.compare(make_case(surrogate="arctan", slope=2.0, T=32, detach_reset=False, threshold=0.7),
                         "brainpy", batch=8)
    assert res["status"] == "pass", parity.summary(res)


def test_rockpool_computes_its_own_reset_exactly():
    need("rockpool")
    res = parity.compare(make_case(reset="subtract_decayed", T=32, detach_reset=False), "rockpool", batch=8)
    assert res["status"] == "pass", parity.summary(res)


ROCKPOOL_JAX_SURROGATE = "surrogate is Rockpool's step_pwl, 1/threshold for v >= threshold - 0.5 (spec: superspike slope 1)"


@pytest.mark.parametrize("neuron, extra", [("lif", {}), ("cuba_lif", {"alpha": 0.7}), ("if", {})])
def test_rockpool_jax_forward_is_exact_and_only_its_surrogate_differs(neuron, extra):
    """On its own reset (subtract_decayed, attached) LIFJax computes the spec's lif (vanishing
    synaptic time constant), cuba_lif (its synapse) and if exactly; the gradients differ only by
    the step_pwl surrogate it hard-codes, which the proof reproduces."""
    need("rockpool-jax")
    case = make_case(reset="subtract_decayed", T=32, detach_reset=False, **extra)
    layers = tuple(replace(layer, type=neuron) if layer.type == "lif" else layer for layer in case.network.layers)
    case = replace(case, network=replace(case.network, layers=layers))
    res = parity.compare(case, "rockpool-jax", batch=8)
    assert res["status"] == "deviates", parity.summary(res)
    assert res["deviations"] == [ROCKPOOL_JAX_SURROGATE]
    assert res["checks"]["spikes_identical"] and res["checks"]["readout"] and res["checks"]["loss"]
    assert res["spikes"][0]["spikes_ref"] > 0 and res["readout_max_rel_err"] < 1e-5
    assert not res["checks"]["grads"]  # the surrogate's difference is real
    assert res["proof"]["agrees"] and res["proof"]["max_grad_norm_rel_err"] < 1e-5


def test_rockpool_jax_surrogate_follows_the_threshold():
    """step_pwl's derivative is 1/threshold: at threshold 0.7 the proof must use slope 1/0.7."""
    need("rockpool-jax")
    res = parity.compare(make_case(reset="subtract_decayed", T=32, detach_reset=False, threshold=0.7),
                         "rockpool-jax", batch=8)
    assert res["status"] == "deviates" and res["proof"]["agrees"], parity.summary(res)


def test_rockpool_jax_refuses_spiking_layers_with_different_thresholds():
    cls = need("rockpool-jax")
    case = make_case()
    layers = tuple(replace(layer, threshold=0.8) if i == 3 else layer for i, layer in enumerate(case.network.layers))
    ok = cls().supports(replace(case, network=replace(case.network, layers=layers)))
    assert not ok.ok and "different thresholds" in ok.reason, ok.reason


def test_spikingjelly_surrogates_map_to_its_builtins():
    need("spikingjelly")
    for surrogate, slope in (("arctan", 2.0), ("sigmoid", 4.0), ("superspike", 2.0)):
        res = parity.compare(make_case(surrogate=surrogate, slope=slope, reset="zero"), "spikingjelly", batch=8)
        assert res["status"] == "pass", (surrogate, parity.summary(res))
    res = parity.compare(make_case(surrogate="boxcar", slope=2.0, reset="zero"), "spikingjelly", batch=8)
    assert res["status"] == "deviates" and "surrogate boxcar" in res["reason"]
    assert res["checks"]["readout"] and not res["checks"]["grads"]


@pytest.mark.parametrize("name", ["snntorch-compile", "norse-compile"])
def test_compiled_framework_runners_pass_parity(name):
    need(name)
    res = parity.compare(make_case(T=8), name, batch=4)
    assert res["status"] == "pass", parity.summary(res)


def test_snntorch_skips_decayed_reset():
    need("snntorch")
    ok = get_runner_class("snntorch")().supports(make_case(reset="subtract_decayed"))
    assert not ok.ok and "reset subtract_decayed" in ok.reason


def test_torch_compile_passes_parity():
    need("torch-compile")
    res = parity.compare(make_case(T=8), "torch-compile", batch=4)
    assert res["status"] == "pass", parity.summary(res)


@pytest.mark.parametrize("name, surrogate, slope", [("torch", "arctan", 2.0), ("snntorch", "arctan", 2.0),
                                                     ("snntorch", "sigmoid", 4.0), ("torch", "boxcar", 2.0)])
def test_same_surrogate_same_gradients(name, surrogate, slope):
    need(name)
    res = parity.compare(make_case(surrogate=surrogate, slope=slope), name, batch=8)
    assert res["status"] == "pass", parity.summary(res)


def test_norse_declares_surrogate_deviation():
    need("norse")
    res = parity.compare(make_case(surrogate="arctan", slope=2.0), "norse", batch=8)
    assert res["status"] == "deviates" and "surrogate arctan" in res["reason"]
    assert res["checks"]["readout"] and res["checks"]["loss"]  # the forward pass is still exact
    assert not res["checks"]["grads"]


def test_spyx_deviation_is_exactly_a_one_step_delay():
    need("spyx")
    assert_spyx_is_the_reference_delayed(make_case(T=32), batch=8)


def test_parity_gate_catches_a_wrong_adapter(monkeypatch):
    need("torch")
    from snnbench.runners.torch_runner import TorchRunner

    class OffByThreshold(TorchRunner):
        name = "broken"

        def make_model(self, case):
            layers = tuple(replace(layer, threshold=0.9) if layer.spiking else layer for layer in case.network.layers)
            return super().make_model(replace(case, network=replace(case.network, layers=layers)))

    monkeypatch.setitem(registry(), "broken", OffByThreshold)
    res = parity.compare(make_case(), "broken", batch=8)
    assert res["status"] == "fail"
    assert sum(s["flips"] for s in res["spikes"]) > 0


@pytest.mark.parametrize("name", ADAPTERS)
def test_weights_roundtrip(name):
    case = make_case()
    cls = need(name, case)
    r = cls()
    r.build(case, "cpu", 0)
    w = init_weights(case.network, 7)
    r.set_weights(w)
    got = r.get_weights()
    assert set(got) == set(w)
    for k in w:
        np.testing.assert_array_equal(got[k], w[k])


@pytest.mark.parametrize("name", ["spyx", "snntorch"])
def test_unsupported_specs_are_refused_with_a_reason(name):
    cls = need(name)
    case = make_case(reset="zero") if name == "spyx" else replace(make_case(), spec=replace(make_case().spec, dtype="float16"))
    ok = cls().supports(case)
    assert not ok.ok and ok.reason


@pytest.mark.parametrize("name, case, reason", [
    ("spikingjelly", make_case(reset="none"), "reset none is not implemented"),
    ("spikingjelly", make_case(learn_beta=True), "one decay per layer"),
    ("sinabs", make_case(reset="none"), "reset none is not implemented"),
    ("sinabs", make_case(learn_beta=True), "trainable decays"),
    ("rockpool", make_case(reset="zero"), "reset zero is not implemented"),
    ("rockpool", make_case(learn_beta=True), "trainable decays"),
    ("sinabs", replace(make_case(), spec=replace(make_case().spec, dtype="bfloat16")), "dtype bfloat16"),
    ("rockpool-jax", make_case(reset="zero"), "reset zero is not implemented"),
    ("rockpool-jax", make_case(learn_beta=True), "trainable decays"),
    ("rockpool-jax", replace(make_case(), spec=replace(make_case().spec, dtype="bfloat16")), "dtype bfloat16"),
    ("brainpy", make_case(reset="zero"), "reset zero is not implemented"),
    ("brainpy", make_case(learn_beta=True), "trainable decays"),
    ("brainpy", replace(make_case(), spec=replace(make_case().spec, dtype="float16")), "dtype float16"),
])
def test_new_adapters_refuse_what_they_cannot_express(name, case, reason):
    cls = need(name)
    ok = cls().supports(case)
    assert not ok.ok and reason in ok.reason, ok.reason


@pytest.mark.parametrize("name", ADAPTERS)
def test_adapter_trains(name, small_shd):
    from snnbench.data import shd

    case = make_case(T=16)
    case = replace(case, spec=replace(case.spec, epochs=4, batch=32))
    cls = need(name, case)
    kw = dict(time_steps=16, channels=32, duration_s=1.0)
    train, test = shd.load_split(small_shd, "train", **kw), shd.load_split(small_shd, "test", **kw)
    r = cls()
    r.build(case, "cpu", 0)
    r.set_weights(init_weights(case.network, 0))
    r.stage(train, test)
    r.compile()
    losses = [r.train_epoch(e).loss for e in range(4)]
    ev = r.evaluate()
    assert losses[-1] < losses[0], losses
    # evaluate() is the accuracy and loss of the trained network's own forward pass on the test split
    logits = r.forward(test.dense()).readout.mean(axis=1)
    logp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    assert ev.samples == len(test)
    assert ev.accuracy == pytest.approx(float(np.mean(logits.argmax(1) == test.labels)))
    assert ev.loss == pytest.approx(float(-logp[np.arange(len(test)), test.labels].mean()), rel=1e-4)


def test_a_rounding_flip_sets_its_sample_aside(monkeypatch):
    """One flipped spike (and everything downstream of it in that sample) is not a semantic
    difference: that sample is set aside and the rest must still agree; flips in most samples fail."""
    need("torch")
    from snnbench.runners.torch_runner import TorchRunner

    def make(flip_samples):
        class Flipping(TorchRunner):
            name = "flipping"

            def forward(self, x):
                out = super().forward(x)
                for b in flip_samples:  # one flip, and its sample's readout thrown off
                    out.spikes[0][b, 3, 0] = 1 - out.spikes[0][b, 3, 0]
                    out.readout[b] += 0.5
                return out

            def forward_backward(self, x, y):
                res = super().forward_backward(x, y)
                if len(x) == 8:  # the whole batch, flipped samples included: the loss drifts
                    res = type(res)(res.loss * 1.01, res.grads)
                return res

        return Flipping

    case = make_case(T=32)
    monkeypatch.setitem(registry(), "flipping", make([2]))
    res = parity.compare(case, "flipping", batch=8)
    assert res["status"] == "pass", parity.summary(res)
    assert res["samples_set_aside"] == 1 and sum(s["flips"] for s in res["spikes"]) == 1
    assert "1 of 8 samples with flips set aside" in parity.summary(res)
    monkeypatch.setitem(registry(), "flipping", make(range(8)))
    res = parity.compare(case, "flipping", batch=8)
    assert res["status"] == "fail" and res["samples_set_aside"] == 0
