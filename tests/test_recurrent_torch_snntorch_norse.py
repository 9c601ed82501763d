"""Recurrent LIF (``recurrent: true``) in plain torch, snnTorch (``snn.RLeaky`` / ``snn.RSynaptic``) and Norse
(``LIFRecurrentCell``): parity with the reference on a small recurrent net, the declared deviations proven,
the refusals with their reasons, the NIR round trip of the recurrent graph, and the recurrent fairness
scripts' "same network" check. Each test skips only when its framework is not installed."""

import numpy as np
import pytest

from snnbench.errors import SnnbenchError
from snnbench.harness import parity
from snnbench.runners import get_runner_class
from snnbench.spec import init_weights, parse_suite

from .test_adapters import need


def rec_case(neuron="lif", reset="subtract", detach_reset=True, bias=False, T=16, hidden=16, image=False):
    """One recurrent hidden layer (the ``shd-rec-h128`` shape, scaled down); ``bias`` on the weight layers."""
    net = {"neuron": {"beta": 0.9, "threshold": 1.0, "reset": reset, "detach_reset": detach_reset},
           "surrogate": {"name": "superspike", "slope": 1.0},
           "layers": [{"type": "linear", "out": hidden, "bias": bias}, {"type": neuron, "recurrent": True},
                      {"type": "linear", "out": 20, "bias": bias}, {"type": "li"}]}
    defaults = {"time_steps": T, "channels": 32, "batch": 8, "lr": 0.01}
    if image:
        net["layers"] = [{"type": "conv2d", "out": 2, "kernel": 5, "stride": 4}, {"type": neuron, "recurrent": True},
                         {"type": "flatten"}, {"type": "linear", "out": 10}, {"type": "li"}]
        defaults = {"time_steps": T, "batch": 8, "dataset": "nmnist"}
    return parse_suite({"suite": "t", "defaults": defaults, "network": net, "cases": [{"id": "c"}]},
                       "t.yaml").cases[0]


def _compare(case, name):
    need(name, case)
    res = parity.compare(case, name, batch=8)
    assert res["spikes"][0]["spikes_ref"] > 0
    assert "layers.1.recurrent" in res["grads"]  # V's gradient is compared by its canonical name
    return res


@pytest.mark.parametrize("name, case", [
    ("torch", rec_case(bias=True)), ("torch", rec_case("cuba_lif", reset="zero", detach_reset=False)),
    ("snntorch", rec_case(bias=True)), ("snntorch", rec_case("cuba_lif")),
    ("norse", rec_case("cuba_lif", reset="zero")),  # (its lif: the proof of test_norse_declares...)
], ids=lambda v: v if isinstance(v, str) else f"{v.network.layers[1].type}-{v.network.layers[1].reset}")
def test_recurrent_layer_passes_parity(name, case):
    res = _compare(case, name)
    assert res["status"] == "pass", parity.summary(res)
    assert res["grads"]["layers.1.recurrent"]["cosine"] >= 0.99999


def test_snntorch_declares_its_always_detached_reset():
    res = _compare(rec_case(detach_reset=False), "snntorch")
    assert res["status"] == "deviates" and res["deviations"] == ["reset always detached (spec: detach_reset false)"]
    assert res["proof"]["agrees"]


def test_norse_declares_and_proves_its_zero_reset():
    """Norse's LIFRecurrentCell resets to v_reset: on the suite's subtract reset the difference is real, and
    the reference with reset zero reproduces it exactly."""
    res = _compare(rec_case(), "norse")
    assert res["status"] == "deviates", parity.summary(res)
    assert res["deviations"][0].startswith("recurrent layer resets to zero")
    assert sum(s["flips"] for s in res["spikes"]) > 0
    assert res["proof"]["agrees"] and sum(s["flips"] for s in res["proof"]["spikes"]) == 0


def test_weights_round_trip_through_the_frameworks_own_parameters():
    """snnTorch's recurrent nn.Linear and Norse's cell hold V (and Norse the folded input weight); the frozen
    snnTorch bias stays zero and is not trained."""
    case = rec_case()
    w = init_weights(case.network, 3)
    for name in ("snntorch", "norse"):
        runner = need(name, case)()
        runner.build(case, "cpu", 0)
        runner.set_weights(w)
        got = runner.get_weights()
        assert set(got) == set(w)
        for key in w:
            np.testing.assert_allclose(got[key], w[key], rtol=1e-6, atol=1e-7)
    runner = need("snntorch", case)()
    runner.build(case, "cpu", 0)
    rec = runner.model.layers[1].recurrent
    assert not rec.bias.requires_grad and not rec.bias.any()
    assert all(p is not rec.bias for group in runner.optimizer.param_groups for p in group["params"])


@pytest.mark.parametrize("name, case, reason", [
    ("snntorch", rec_case(reset="zero"), "reset to zero after the integration"),
    ("snntorch", rec_case(image=True), "recurrence over an image is a Conv2d"),
    ("norse", rec_case(bias=True), "has no bias"),
    ("norse", rec_case(reset="none"), "always resets"),
    ("norse", rec_case("if"), "if neurons are not implemented"),
    ("sinabs", rec_case(reset="none"), "reset"),
    ("sinabs", rec_case(image=True), "over an image is not mapped"),
    ("snntorch-parallel", rec_case(), "only linear + lif_noreset"),
    ("spyx-psu", rec_case(), "only linear + lif_noreset"),
])
def test_what_cannot_be_expressed_is_refused_with_the_reason(name, case, reason):
    support = get_runner_class(name)().supports(case)
    assert not support.ok and reason in support.reason, support.reason


def test_norse_refuses_a_feed_forward_cuba_lif():
    case = parse_suite({"suite": "t", "defaults": {"time_steps": 16, "channels": 8, "batch": 4},
                        "network": {"layers": [{"type": "linear", "out": 4}, {"type": "cuba_lif"},
                                               {"type": "linear", "out": 2}, {"type": "li"}]},
                        "cases": [{"id": "c"}]}, "t.yaml").cases[0]
    support = get_runner_class("norse")().supports(case)
    assert not support.ok and "only as a recurrent layer" in support.reason


# ---------------------------------------------------------------------------------------------- NIR


def test_nir_round_trip_of_the_recurrent_net(tmp_path):
    """Written as NIR's cycle (the LIF node feeds a Linear that feeds it back), through a file, read back to
    the same network and weights; the reference computes the same spikes from them."""
    pytest.importorskip("nir")
    from snnbench.interop import nir_graph

    case = rec_case(hidden=12)
    w = init_weights(case.network, 1)
    graph = nir_graph.to_nir(case.network, w, 1e-3)
    assert {("layers.1", "layers.1.recurrent"), ("layers.1.recurrent", "layers.1")} <= set(graph.edges)
    assert type(graph.nodes["layers.1.recurrent"]).__name__ == "Linear"
    nir_graph.write(tmp_path / "rec.nir", graph)
    network, weights, dt = nir_graph.from_nir(nir_graph.read(tmp_path / "rec.nir"))
    assert network == case.network and dt == 1e-3 and set(weights) == set(w)
    for key in w:
        np.testing.assert_array_equal(weights[key], w[key])


def _foreign_graph(nested: bool, rec_bias: float = 0.0):
    """A graph from elsewhere (no snnbench metadata): Affine -> recurrent LIF -> Affine -> LI, the recurrence
    flat (a cycle) or nested as snnTorch's exporter writes an RLeaky."""
    import nir

    rng = np.random.default_rng(0)
    n, dt = 6, 1e-3
    tau = np.full(n, dt / 0.1)
    lif = nir.LIF(tau=tau, r=tau / dt, v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n))
    w_rec = nir.Affine(weight=rng.normal(size=(n, n)).astype(np.float32), bias=np.full(n, rec_bias, np.float32))
    nodes = {"input": nir.Input(input_type={"input": np.array([4])}),
             "fc1": nir.Affine(weight=rng.normal(size=(n, 4)).astype(np.float32), bias=np.zeros(n, np.float32)),
             "fc2": nir.Affine(weight=rng.normal(size=(3, n)).astype(np.float32), bias=np.zeros(3, np.float32)),
             "li": nir.LI(tau=np.full(3, dt / 0.1), r=np.full(3, 10.0), v_leak=np.zeros(3)),
             "output": nir.Output(output_type={"output": np.array([3])})}
    edges = [("input", "fc1"), ("fc2", "li"), ("li", "output")]
    if nested:
        nodes["rec"] = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([n])}), "lif": lif,
                                           "w_rec": w_rec, "output": nir.Output(output_type={"output": np.array([n])})},
                                    edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
                                    type_check=False)
        edges += [("fc1", "rec"), ("rec", "fc2")]
    else:
        nodes.update(lif=lif, w_rec=w_rec)
        edges += [("fc1", "lif"), ("lif", "fc2"), ("lif", "w_rec"), ("w_rec", "lif")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), w_rec.weight


@pytest.mark.parametrize("nested", [False, True], ids=["cycle", "nested"])
def test_nir_reads_a_foreign_recurrent_layer(nested):
    pytest.importorskip("nir")
    from snnbench.interop import nir_graph

    graph, v = _foreign_graph(nested)
    network, weights, _ = nir_graph.from_nir(graph, dt=1e-3)
    assert [(la.type, la.recurrent) for la in network.layers] == [("linear", False), ("lif", True),
                                                                  ("linear", False), ("li", False)]
    np.testing.assert_array_equal(weights["layers.1.recurrent"], v)
    assert abs(network.layers[1].beta - 0.9) < 1e-9


def test_nir_refuses_a_recurrence_with_a_bias():
    pytest.importorskip("nir")
    from snnbench.interop import nir_graph

    with pytest.raises(SnnbenchError, match="recurrent Affine has a bias"):
        nir_graph.from_nir(_foreign_graph(False, rec_bias=0.5)[0], dt=1e-3)


def test_nir_writers_without_a_recurrent_idiom_refuse_instead_of_dropping_it():
    from snnbench.interop.frameworks import NORSE

    case = rec_case()
    with pytest.raises(NotImplementedError, match="recurrent layer"):
        NORSE.write(case.network, init_weights(case.network, 0), 1e-3)


# -------------------------------------------------------------------------------------- fairness


@pytest.mark.parametrize("name", ["snntorch", "norse"])
def test_recurrent_fairness_script_runs_the_same_network(name):
    """The framework's own recurrent loop (tests/benchmarks/idiomatic) and the adapter agree on one batch (the
    timing ratio is `make bench-check`'s; here one tiny round only exercises the script)."""
    import importlib

    cls = need(name)
    module = importlib.import_module(cls.idiomatic_recurrent)
    r = module.compare(time_steps=8, batch=4, rounds=1, steps=1)
    loss_tol, grad_tol = cls.idiomatic_tolerance
    assert r["loss_rel_err"] <= loss_tol and r["grad_rel_err"] <= grad_tol, r
